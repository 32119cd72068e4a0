"""The five schedules and their registry.

Each schedule knows how to take one *level*: from the model's current weights (and mask) to a
target sparsity, with whatever training it does. Whether levels start from the dense model
(independent schedules: ``oneshot``, ``finetune``, ``gradual``) or from the previous level
(chained: ``iterative``, ``lottery``) is the driver's business (:mod:`.run`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..registry import Registry
from ..prune import Mask
from ..training import TrainConfig
from .base import Job, recover
from .cubic import GradualPruner
from .recipe import Recovery


@dataclass(frozen=True)
class Schedule:
    """A pruning schedule.

    Attributes:
        name: its registry name.
        description: one line for help texts.
        chained: levels follow each other (``True``) or each starts from the dense model.
        trains: whether it trains at all.
        rewinds: whether it needs the weights to rewind to (:attr:`Job.rewind`).
    """

    name: str
    description: str
    chained: bool = False
    trains: bool = True
    rewinds: bool = False

    def train_config(self, recipe: Recovery) -> TrainConfig | None:
        """The training recipe of one level (``None`` if it does not train)."""
        return recipe.train_config(self.name) if self.trains else None

    def epochs_per_level(self, recipe: Recovery) -> float:
        config = self.train_config(recipe)
        return float(config.epochs) if config is not None else 0.0

    def config(self, recipe: Recovery) -> dict[str, Any]:
        """The parts of ``recipe`` that change this schedule's results (for fingerprints)."""
        config = self.train_config(recipe)
        if config is None:
            return {}
        out: dict[str, Any] = {"train": config.to_dict()}
        if recipe.distill is not None:
            out["distill"] = recipe.distill.to_dict()
        if self.chained:
            out["round_fraction"] = recipe.round_fraction
        return out

    def step(self, job: Job, sparsity: float, mask: Mask | None, seed_offset: int) -> tuple[Mask, float]:
        """Take one level: returns the new mask and the epochs trained."""
        raise NotImplementedError


@dataclass(frozen=True)
class PruneThenTrain(Schedule):
    """Prune to the level's sparsity, optionally rewind surviving weights, then train with
    the mask held (``oneshot``, ``finetune``, ``iterative``, ``lottery``)."""

    def config(self, recipe: Recovery) -> dict[str, Any]:
        out = super().config(recipe)
        if self.rewinds:
            out["rewind_epoch"] = recipe.rewind_epoch
        return out

    def step(self, job: Job, sparsity: float, mask: Mask | None, seed_offset: int) -> tuple[Mask, float]:
        mask = job.prune(sparsity, mask)
        if not self.trains or sparsity == 0:  # level 0 is the dense model itself
            return mask, 0.0
        if self.rewinds:
            job.model.load_state_dict(job.rewind_state())
            mask.apply_(job.model)
        config = self.train_config(job.recipe)
        return mask, recover(job, mask, config, seed_offset, desc=f"{self.name} {sparsity:g}%")


@dataclass(frozen=True)
class Gradual(Schedule):
    """Zhu & Gupta: train while raising the sparsity along the cubic schedule."""

    def config(self, recipe: Recovery) -> dict[str, Any]:
        return {**super().config(recipe), "start": recipe.gradual_start, "end": recipe.gradual_end,
                "prunings": recipe.gradual_prunings}

    def step(self, job: Job, sparsity: float, mask: Mask | None, seed_offset: int) -> tuple[Mask, float]:
        if sparsity == 0:
            return job.prune(0.0, mask), 0.0
        r = job.recipe
        pruner = GradualPruner(job.spec, sparsity, n=r.gradual_prunings, start_fraction=r.gradual_start,
                               end_fraction=r.gradual_end, mask=mask, example_inputs=job.example_inputs,
                               calibration=job.calibration_data, structure=job.structure)
        try:
            epochs = recover(job, None, r.gradual, seed_offset, callbacks=(pruner,), desc=f"gradual {sparsity:g}%")
        finally:
            pruner.release()
        return pruner.mask, epochs


SCHEDULES: Registry[Schedule] = Registry("schedule")
"""The registered schedules by name."""


def register_schedule(schedule: Schedule) -> Schedule:
    """Add a schedule to :data:`SCHEDULES` (e.g. a subclass of :class:`Schedule`)."""
    return SCHEDULES.register(schedule.name, schedule, description=schedule.description)


def get_schedule(name: str | Schedule) -> Schedule:
    """The schedule called ``name`` (a :class:`Schedule` is returned as it is).

    Raises:
        UnknownNameError: for an unknown name, listing the valid ones.

    Example:
        >>> get_schedule("iterative").chained
        True
    """
    return name if isinstance(name, Schedule) else SCHEDULES.get(name)


for _schedule in (
    PruneThenTrain("oneshot", "prune once, no training", trains=False),
    PruneThenTrain("finetune", "prune once, then fine-tune with the mask held"),
    PruneThenTrain("iterative", "Han et al. 2015: prune a fraction of the remaining weights, fine-tune, repeat",
                   chained=True),
    Gradual("gradual", "Zhu & Gupta 2017: prune along a cubic schedule while training"),
    PruneThenTrain("lottery", "Frankle & Carbin 2019: prune, rewind survivors to their initial values, retrain, "
                   "repeat", chained=True, rewinds=True),
):
    register_schedule(_schedule)
