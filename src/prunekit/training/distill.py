"""Knowledge distillation (Hinton et al. 2015) for recovering a pruned model.

The pruned *student* is trained against the dense *teacher*'s softened outputs::

    loss = alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(s, y)

With in-memory training data the teacher's logits on the training set are computed once and kept
in memory (10 floats per sample); :func:`train` publishes every batch (with its indices) on
``TrainState.batch``, so the loss looks them up instead of running the teacher at every step.

Example:
    >>> from prunekit.models import get_model
    >>> from prunekit.training import TrainConfig, train
    >>> x, y = torch.randn(128, 1, 28, 28), torch.randint(0, 10, (128,))
    >>> teacher, student = get_model("lenet300", seed=0), get_model("lenet300", seed=1)
    >>> distiller = Distiller.from_teacher(teacher, x, DistillConfig(temperature=4))
    >>> history = train(student, (x, y), TrainConfig(epochs=1, batch_size=32), loss_fn=distiller.loss_fn,
    ...                 callbacks=[distiller], progress=False)
    >>> distiller.logits.shape
    torch.Size([128, 10])
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .loop import Callback, logits_of


@dataclass(frozen=True)
class DistillConfig:
    """How to distil.

    The soft term's gradients grow with ``T`` (up to ``alpha * T`` times those of the
    cross-entropy while the student is far from the teacher): with the recovery recipes'
    peak learning rate of 0.1, ``T = 4, alpha = 0.9`` diverged on the reference MLP while
    the defaults recover well; lower the learning rate for a larger ``alpha * T``.

    Args:
        temperature: softens both distributions (``T`` above); ``T > 0``.
        alpha: weight of the soft-target term, in ``[0, 1]``; ``1 - alpha`` weighs the
            cross-entropy against the labels.
    """

    temperature: float = 4.0
    alpha: float = 0.5

    def __post_init__(self) -> None:
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ConfigError(f"distillation temperature must be a positive number, got {self.temperature!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"distillation alpha must be in [0, 1], got {self.alpha!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def soft_target_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """``KL(softmax(t / T) || softmax(s / T))``, averaged over the batch.

    Example:
        >>> t = torch.tensor([[2.0, 0.0]])
        >>> float(soft_target_kl(t, t))
        0.0
    """
    log_s = F.log_softmax(student_logits / temperature, dim=1)
    log_t = F.log_softmax(teacher_logits / temperature, dim=1)
    return F.kl_div(log_s, log_t, log_target=True, reduction="batchmean")


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor,
                      config: DistillConfig = DistillConfig()) -> Tensor:
    """Hinton et al.'s loss: ``alpha * T^2 * KL(teacher || student at T) + (1 - alpha) * CE``.

    Args:
        student_logits: ``[N, C]`` logits of the model being trained.
        teacher_logits: ``[N, C]`` logits of the teacher on the same inputs.
        labels: ``[N]`` class indices.
        config: temperature and weight.

    Returns:
        A scalar tensor.
    """
    t = config.temperature
    loss = config.alpha * t * t * soft_target_kl(student_logits, teacher_logits.detach(), t)
    if config.alpha < 1.0:
        loss = loss + (1.0 - config.alpha) * F.cross_entropy(student_logits, labels)
    return loss


def lm_distillation_loss(teacher: nn.Module, config: DistillConfig = DistillConfig(temperature=1.0, alpha=1.0)):
    """The loss of a causal language model distilled from ``teacher`` (frozen, run on every batch):
    ``alpha * T^2 * KL(teacher || student at T)`` per token, plus ``(1 - alpha)`` x the next-token
    cross-entropy (the labels are the input ids). The default is the logit KL alone (Minitron's recovery).

    Example:
        >>> import torch
        >>> class Echo(nn.Module):
        ...     def forward(self, input_ids): return torch.nn.functional.one_hot(input_ids, 5).float()
        >>> from prunekit.batches import Batch
        >>> ids = torch.tensor([[1, 2, 3]])
        >>> float(lm_distillation_loss(Echo())(Echo()(ids), Batch((ids,), labels=ids)))
        0.0
    """
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)

    def loss(outputs, batch) -> Tensor:
        student = logits_of(outputs).float()
        first = next(teacher.parameters(), None)
        if first is not None and first.device != student.device:
            teacher.to(student.device)
        with torch.no_grad():
            target = logits_of(teacher(*batch.args, **batch.kwargs)).float()
        t = config.temperature
        total = config.alpha * t * t * soft_target_kl(student.flatten(0, -2), target.flatten(0, -2), t)
        if config.alpha < 1.0:
            if batch.labels is None:
                raise ConfigError("the next-token term of the distillation loss needs the input ids as labels")
            total = total + (1.0 - config.alpha) * F.cross_entropy(
                student[:, :-1].flatten(0, 1), batch.labels[:, 1:].flatten(), ignore_index=-100)
        return total

    return loss


@torch.inference_mode()
def teacher_logits(teacher: nn.Module, x: Tensor, batch_size: int = 2000) -> Tensor:
    """The teacher's logits on every sample of the in-memory inputs ``x`` (eval mode), as one ``[N, C]`` tensor."""
    was_training = teacher.training
    teacher.eval()
    out = torch.cat([logits_of(teacher(x[i:i + batch_size])) for i in range(0, len(x), batch_size)])
    teacher.train(was_training)
    return out.clone()


class Distiller(Callback):
    """The distillation loss for :func:`~prunekit.training.train`: pass it as a callback and its :attr:`loss_fn`.

    With in-memory training data the teacher's logits are computed once and looked up by the batch's
    indices; with a DataLoader the teacher (a frozen copy of the dense model) runs on every batch.

    Args:
        logits: the teacher's logits on the training set, ``[N, C]``, in training-data order.
        config: temperature and weight.
        teacher: the teacher model, used when batches have no indices.
    """

    def __init__(self, logits: Tensor | None, config: DistillConfig = DistillConfig(),
                 teacher: nn.Module | None = None):
        if logits is None and teacher is None:
            raise ConfigError("distillation needs the teacher's logits or the teacher model")
        self.logits, self.config, self.teacher = logits, config, teacher

    @classmethod
    def from_teacher(cls, teacher: nn.Module, data, config: DistillConfig = DistillConfig()) -> "Distiller":
        """Precompute ``teacher``'s logits on in-memory training inputs (a tensor, or ``(x, y)``), or keep a
        frozen copy of the teacher to run on every batch of a DataLoader."""
        if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], Tensor):
            data = data[0]
        if isinstance(data, Tensor):
            return cls(teacher_logits(teacher, data), config)
        frozen = copy.deepcopy(teacher).eval()
        for p in frozen.parameters():
            p.requires_grad_(False)
        return cls(None, config, frozen)

    def loss_fn(self, outputs, batch) -> Tensor:
        """``loss_fn(outputs, batch)`` for :func:`~prunekit.training.train`."""
        student = logits_of(outputs)
        if self.logits is not None and batch.indices is not None:
            teacher = self.logits.to(student.device)[batch.indices.to(student.device)]
        elif self.teacher is not None:
            with torch.no_grad():
                self.teacher.to(student.device)
                teacher = logits_of(self.teacher(*batch.args, **batch.kwargs))
        else:
            raise ConfigError("the batch has no indices into the precomputed teacher logits; pass the teacher model")
        if batch.labels is None:
            raise ConfigError("distillation needs labels for its cross-entropy term")
        return distillation_loss(student, teacher, batch.labels, self.config)
