"""Knowledge distillation (Hinton et al. 2015) for recovering a pruned model.

The pruned *student* is trained against the dense *teacher*'s softened outputs::

    loss = alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(s, y)

The teacher's logits on the training set are computed once and kept in memory (10 floats per
sample); :func:`train` publishes the indices of every batch on ``TrainState.batch``, so the
loss looks them up instead of running the teacher at every step.

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

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .loop import Callback, TrainState


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


@torch.inference_mode()
def teacher_logits(teacher: nn.Module, x: Tensor, batch_size: int = 2000) -> Tensor:
    """The teacher's logits on every sample of ``x`` (eval mode), as one ``[N, C]`` tensor."""
    was_training = teacher.training
    teacher.eval()
    out = torch.cat([teacher(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    teacher.train(was_training)
    return out.clone()


class Distiller(Callback):
    """A :class:`~prunekit.train.Callback` and ``loss_fn`` pair for :func:`~prunekit.train.train`.

    Pass it both as a callback (it reads the batch indices each step) and its :attr:`loss_fn`.
    Without batch indices (a training loop that does not publish them) it runs the teacher
    model on the batch instead, if one was given.

    Args:
        logits: the teacher's logits on the training set, ``[N, C]``, in training-data order.
        config: temperature and weight.
        teacher: optional teacher model, used only when no batch indices are available.
    """

    def __init__(self, logits: Tensor | None, config: DistillConfig = DistillConfig(),
                 teacher: nn.Module | None = None):
        if logits is None and teacher is None:
            raise ConfigError("distillation needs the teacher's logits or the teacher model")
        self.logits, self.config, self.teacher = logits, config, teacher
        self._batch: Tensor | None = None

    @classmethod
    def from_teacher(cls, teacher: nn.Module, x: Tensor, config: DistillConfig = DistillConfig()) -> "Distiller":
        """Precompute ``teacher``'s logits on the training inputs ``x``."""
        return cls(teacher_logits(teacher, x), config)

    def on_step_begin(self, state: TrainState) -> None:
        self._batch = getattr(state, "batch", None)

    def on_train_end(self, state: TrainState) -> None:
        self._batch = None

    def loss_fn(self, logits: Tensor, x: Tensor, y: Tensor) -> Tensor:
        """``loss_fn(logits, x, y)`` for :func:`~prunekit.train.train`."""
        return distillation_loss(logits, self._teacher_batch(x), y, self.config)

    def _teacher_batch(self, x: Tensor) -> Tensor:
        if self.logits is not None and self._batch is not None and len(self._batch) == len(x):
            return self.logits[self._batch]
        if self.teacher is None:
            raise ConfigError("the training loop gave no batch indices; pass the teacher model to Distiller")
        with torch.no_grad():
            was_training = self.teacher.training
            self.teacher.eval()
            out = self.teacher(x)
            self.teacher.train(was_training)
        return out
