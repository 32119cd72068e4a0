"""The recovery recipe: how much and how each schedule trains, as one frozen dataclass.

The defaults are tuned on MNIST with the reference MLP (see ``scripts/bench_recovery.sh``):
they reach the issue's accuracy targets while the whole comparison (every schedule x weight,
unit x 13 sparsities) fits in an hour on two CPU cores.

Example:
    >>> recipe = Recovery(iterative=TrainConfig(epochs=1, lr=0.01, lr_schedule="cosine"))
    >>> recipe.train_config("iterative").epochs
    1
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any


from ..training.distill import DistillConfig
from ..errors import ConfigError
from ..storage import fingerprint  # noqa: F401  (re-exported)
from ..prune.spec import PruneSpec  # noqa: F401  (its home was here; re-exported)
from ..training import TrainConfig


def _finetune() -> TrainConfig:
    # learning-rate rewinding (Renda et al. 2020): the baseline's one-cycle schedule again,
    # which recovers far more per epoch than fine-tuning at a small constant or decaying rate
    return TrainConfig(epochs=2.0, lr=0.1, lr_schedule="onecycle")


def _gradual() -> TrainConfig:
    return TrainConfig(epochs=3.0, lr=0.1, lr_schedule="onecycle")


def _lottery() -> TrainConfig:
    return TrainConfig(epochs=3.0, lr=0.1, lr_schedule="onecycle")


BUILT_IN = ("finetune", "iterative", "gradual", "lottery")
"""The schedules that train whose recipes are fields of :class:`Recovery`."""


@dataclass(frozen=True)
class Recovery:
    """How pruned models recover accuracy.

    Args:
        finetune: training after the single pruning step of ``finetune``.
        iterative: fine-tuning after every round of ``iterative`` (per level).
        gradual: the whole run of ``gradual`` (pruning happens during it).
        lottery: retraining from the rewound weights after every round of ``lottery``.
        round_fraction: chained schedules prune at most this fraction of the remaining weights
            (or units) per round; extra rounds are inserted between targets further apart.
        gradual_start: fraction of the gradual run's steps before the first pruning step (t0).
        gradual_end: fraction of the steps by which the final sparsity is reached (t0 + n dt);
            the rest fine-tunes at the final sparsity.
        gradual_prunings: number of pruning steps ``n`` of the cubic schedule.
        rewind_epoch: ``lottery`` rewinds surviving weights to their values after this many
            epochs of the baseline's training (0: the initial values).
        distill: if given, every recovery trains against the dense model's soft targets.
        others: the recipes of registered schedules that train, beyond the four above, as
            ``((schedule name, TrainConfig), ...)``; such a schedule not listed recovers with ``finetune``'s.
    """

    finetune: TrainConfig = field(default_factory=_finetune)
    iterative: TrainConfig = field(default_factory=_finetune)
    gradual: TrainConfig = field(default_factory=_gradual)
    lottery: TrainConfig = field(default_factory=_lottery)
    round_fraction: float = 0.6
    gradual_start: float = 0.0
    gradual_end: float = 0.7
    gradual_prunings: int = 20
    rewind_epoch: float = 0.0
    distill: DistillConfig | None = None
    others: tuple[tuple[str, TrainConfig], ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.others, dict):
            object.__setattr__(self, "others", tuple(self.others.items()))
        for entry in self.others:
            if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str)
                    and isinstance(entry[1], TrainConfig)):
                raise ConfigError(f"Recovery(others=...) holds (schedule name, TrainConfig) pairs, got {entry!r}")
        if not 0.0 < self.round_fraction < 1.0:
            raise ConfigError(f"round_fraction must be in (0, 1), got {self.round_fraction!r}")
        if not 0.0 <= self.gradual_start < self.gradual_end <= 1.0:
            raise ConfigError(f"need 0 <= gradual_start < gradual_end <= 1, got "
                              f"{self.gradual_start!r} and {self.gradual_end!r}")
        if int(self.gradual_prunings) != self.gradual_prunings or self.gradual_prunings < 1:
            raise ConfigError(f"gradual_prunings must be a positive integer, got {self.gradual_prunings!r}")
        if not (self.rewind_epoch >= 0 and math.isfinite(self.rewind_epoch)):
            raise ConfigError(f"rewind_epoch must be >= 0, got {self.rewind_epoch!r}")

    def train_config(self, schedule: str) -> TrainConfig:
        """The :class:`~prunekit.train.TrainConfig` a schedule that trains recovers with: its own field,
        its entry in :attr:`others`, else (a registered schedule of its own) ``finetune``'s.

        Example:
            >>> Recovery(others=(("mine", TrainConfig(epochs=0.5)),)).train_config("mine").epochs
            0.5
        """
        if schedule == "oneshot":
            raise ConfigError(f"schedule {schedule!r} does not train")
        if schedule in BUILT_IN:
            return getattr(self, schedule)
        return dict(self.others).get(schedule, self.finetune)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    def with_seed(self, seed: int) -> "Recovery":
        """This recipe with every schedule's training seeded with ``seed`` (a replicate's recovery).

        Example:
            >>> Recovery().with_seed(2).lottery.seed
            2
        """
        return self._with_each(seed=seed)

    def with_precision(self, precision: str) -> "Recovery":
        """This recipe with every schedule's training in ``precision``."""
        return self._with_each(precision=precision)

    def _with_each(self, **changes: Any) -> "Recovery":
        """This recipe with ``changes`` made to every schedule's training config, :attr:`others` included."""
        return replace(self, **{name: replace(getattr(self, name), **changes) for name in BUILT_IN},
                       others=tuple((name, replace(config, **changes)) for name, config in self.others))
