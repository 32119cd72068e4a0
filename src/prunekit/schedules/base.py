"""What a schedule works on (:class:`Job`), what one level produces (:class:`Level`), and the
shared recovery step (prune, optionally rewind, train with the mask held).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Union

from torch import Tensor, nn

from ..training.distill import Distiller
from ..errors import ConfigError
from ..prune import Mask, Pruner
from ..structure import ModelStructure
from ..losses import LossFn
from ..training import Callback, TrainConfig, train
from .recipe import PruneSpec, Recovery

StateDict = dict[str, Tensor]
RewindSource = Union[StateDict, Callable[[], StateDict], None]


@dataclass
class Job:
    """A schedule's inputs.

    Args:
        model: the model, holding the trained dense weights when the schedule starts; it is
            pruned and trained in place.
        train_data: ``(x, y)`` training tensors.
        spec: what to prune (:class:`PruneSpec`).
        recipe: how to recover (:class:`Recovery`).
        rewind: for ``lottery``: the state dict to rewind surviving weights to (the
            initialisation), or a function returning it (called once, when first needed).
        distiller: distillation loss and callback, built from the dense model when
            ``recipe.distill`` is set (see :func:`prepare_distiller`).
        callbacks: extra :class:`~prunekit.train.Callback` objects for every training run
            (logging, early stopping, inspection).
        mask: a mask the model already has (e.g. from a pruned checkpoint); every level
            keeps its pruned entries pruned.
        progress: show training progress bars.
        example_inputs: for unit pruning of a model that is not an ``nn.Sequential``: one batch it
            accepts, so every level prunes the coupled channel groups of the traced graph (see
            :func:`~prunekit.prune.prune_model`).
        seed: seeds torch's global random generator before every level (offset per level), so criteria
            that draw from it (``random``) give the same masks wherever and in whatever order levels run.
        structure: instead of ``example_inputs``, the model's :func:`~prunekit.structure.model_structure`
            (its trace, if any, is reused by every level and by the gradual schedule's pruner).
        calibration: the data criteria that need data read (``wanda``, ``taylor``...), if not
            ``train_data`` (a language model's calibration sequences, say).
        loss_fn: the training loss, if not the default (``train``'s; a language model's
            :func:`~prunekit.losses.causal_lm_loss`, say).
    """

    model: nn.Module
    train_data: tuple[Tensor, Tensor]
    spec: PruneSpec = field(default_factory=PruneSpec)
    recipe: Recovery = field(default_factory=Recovery)
    rewind: RewindSource = None
    distiller: Distiller | None = None
    callbacks: tuple[Callback, ...] = ()
    mask: Mask | None = None
    progress: bool = True
    example_inputs: Any = None
    seed: int = 0
    structure: ModelStructure | None = None
    calibration: Any = None
    loss_fn: LossFn | None = None
    _pruner: Pruner | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def pruner(self) -> Pruner:
        """The :class:`~prunekit.prune.Pruner` of :attr:`model` and :attr:`spec`, built once: every level
        reuses the model's structure."""
        if self._pruner is None or self._pruner.model is not self.model or self._pruner.spec is not self.spec:
            self._pruner = Pruner(self.model, self.spec, self.example_inputs, structure=self.structure)
        return self._pruner

    def prune(self, sparsity: float, mask: Mask | None = None) -> Mask:
        """Prune :attr:`model` in place to ``sparsity`` percent in total (shrinking ``mask``); a spec's
        plan is scaled to that level, and a criterion that needs data reads :attr:`calibration_data`."""
        calibration = self.calibration_data if self.spec.needs_data else None
        return self.pruner.prune(sparsity, mask=mask, calibration=calibration)

    @property
    def calibration_data(self) -> Any:
        """What criteria that need data read: :attr:`calibration`, else :attr:`train_data`."""
        return self.calibration if self.calibration is not None else self.train_data

    def rewind_state(self) -> StateDict:
        """The weights ``lottery`` rewinds to (computed once)."""
        if self.rewind is None:
            raise ConfigError("the lottery schedule needs the weights to rewind to: pass Job(rewind=state_dict) "
                              "or use a registered model so its initialisation can be rebuilt from its seed")
        if callable(self.rewind):
            self.rewind = self.rewind()
        return self.rewind


@dataclass
class Level:
    """One finished level (round) of a schedule; the job's model holds its weights.

    Attributes:
        index: the level's position in the run, from 1 (for chains: in :func:`plan_levels`'s plan;
            a target of 0% is a level too, the dense model itself).
        sparsity: the target sparsity (percent) this level reached.
        recorded: whether ``sparsity`` is one of the requested targets (``False`` for rounds
            a chained schedule inserts on its way).
        mask: the mask after this level.
        train_epochs: epochs of training spent (cumulative over a chain's rounds).
        train_seconds: seconds of pruning and training spent (cumulative over a chain's rounds).
    """

    index: int
    sparsity: float
    recorded: bool
    mask: Mask
    train_epochs: float = 0.0
    train_seconds: float = 0.0


def recover(job: Job, mask: Mask | None, config: TrainConfig, seed_offset: int, *,
            callbacks: tuple[Callback, ...] = (), desc: str = "recover") -> float:
    """Train ``job.model`` with ``mask`` held (distilling if the job says so).

    The seed is ``config.seed + seed_offset``, so every level has its own fixed seed and a
    resumed run repeats exactly the levels an uninterrupted one would.

    Returns:
        The number of epochs trained.

    Raises:
        TrainingError: if the loss became NaN or infinite (the recipe diverged; a ConfigError).
    """
    config = replace(config, seed=config.seed + seed_offset)
    callbacks = (*callbacks, *job.callbacks)
    loss_fn = job.loss_fn
    if job.distiller is not None:
        callbacks = (job.distiller, *callbacks)
        loss_fn = job.distiller.loss_fn
    train(job.model, job.train_data, config, callbacks=callbacks, mask=mask, loss_fn=loss_fn, progress=job.progress,
          desc=desc)
    return float(config.epochs)


def prepare_distiller(job: Job) -> None:
    """Precompute the dense model's logits on the training set, if the recipe distils.

    Call it while ``job.model`` still holds the dense weights.
    """
    if job.recipe.distill is not None and job.distiller is None:
        job.distiller = Distiller.from_teacher(job.model, job.train_data, job.recipe.distill)


class Stopwatch:
    """Seconds since creation (``float(stopwatch)``): how long a level took to run.

    Not :data:`prunekit.timing.Timer`, which is a function that times one call.
    """

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def __float__(self) -> float:
        return time.perf_counter() - self.started


Timer = Stopwatch  # deprecated alias (the old name, easily confused with prunekit.timing.Timer): use Stopwatch
