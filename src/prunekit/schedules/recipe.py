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

from torch import nn

from ..training.distill import DistillConfig
from ..errors import ConfigError
from ..storage import fingerprint  # noqa: F401  (re-exported)
from ..prune import CRITERIA, METHODS, SCOPES, Mask, prune_model
from ..prune.nm import parse_pattern, pattern_sparsity
from ..prune.unit_criteria import needs_data
from ..training import TrainConfig


def _finetune() -> TrainConfig:
    # learning-rate rewinding (Renda et al. 2020): the baseline's one-cycle schedule again,
    # which recovers far more per epoch than fine-tuning at a small constant or decaying rate
    return TrainConfig(epochs=2.0, lr=0.1, lr_schedule="onecycle")


def _gradual() -> TrainConfig:
    return TrainConfig(epochs=3.0, lr=0.1, lr_schedule="onecycle")


def _lottery() -> TrainConfig:
    return TrainConfig(epochs=3.0, lr=0.1, lr_schedule="onecycle")


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

    def __post_init__(self) -> None:
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
        """The :class:`~prunekit.train.TrainConfig` a schedule recovers with."""
        if schedule not in ("finetune", "iterative", "gradual", "lottery"):
            raise ConfigError(f"schedule {schedule!r} does not train")
        return getattr(self, schedule)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    def with_seed(self, seed: int) -> "Recovery":
        """This recipe with every schedule's training seeded with ``seed`` (a replicate's recovery).

        Example:
            >>> Recovery().with_seed(2).lottery.seed
            2
        """
        return replace(self, **{name: replace(getattr(self, name), seed=seed)
                                for name in ("finetune", "iterative", "gradual", "lottery")})

    def with_precision(self, precision: str) -> "Recovery":
        """This recipe with every schedule's training in ``precision``."""
        return replace(self, **{name: replace(getattr(self, name), precision=precision)
                                for name in ("finetune", "iterative", "gradual", "lottery")})


@dataclass(frozen=True)
class PruneSpec:
    """What to prune: the method, the scope, (optionally) the layers and the criterion, as for
    :func:`~prunekit.prune.prune_model`; a criterion that needs data (``taylor``) reads
    ``calibration_batches`` batches of the training data.

    ``plan`` (``((layer pattern, percent), ...)``) gives every layer its own sparsity; it reaches
    ``plan_sparsity`` percent over the pruned layers, and a schedule's intermediate targets scale every
    layer's share proportionally (an iterative schedule's first round at half the total prunes every
    layer to half its planned sparsity).
    """

    method: str = "weight"
    scope: str = "layer"
    layers: tuple[str, ...] | None = None
    include_output: bool = False
    criterion: str | None = None
    calibration_batches: int = 32
    plan: tuple[tuple[str, float], ...] | None = None
    plan_sparsity: float | None = None
    pattern: str | None = None
    reconstruct: bool = False

    def __post_init__(self) -> None:
        METHODS.get(self.method)
        if self.criterion is not None:
            CRITERIA.get(self.criterion)
        if not (isinstance(self.calibration_batches, int) and self.calibration_batches > 0):
            raise ConfigError(f"calibration_batches must be a positive integer, got {self.calibration_batches!r}")
        if self.scope not in SCOPES:
            raise ConfigError(f"unknown pruning scope {self.scope!r}; valid: {', '.join(SCOPES)}")
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(self.layers))
        if self.plan is not None:
            if self.scope != "layer":
                raise ConfigError("a per-layer sparsity plan sets each layer's sparsity itself: use scope='layer'")
            object.__setattr__(self, "plan", tuple((str(p), float(k)) for p, k in self.plan))
            if self.plan_sparsity is None:
                raise ConfigError("a per-layer plan needs plan_sparsity: the sparsity it reaches over the pruned layers")
        if self.pattern is not None:
            n, m = parse_pattern(self.pattern)
            object.__setattr__(self, "pattern", f"{n}:{m}")
            if self.plan is not None:
                raise ConfigError("an N:M pattern sets every layer's sparsity itself: give a pattern or a plan, not both")

    def target(self, sparsity: float) -> float | dict[str, float]:
        """What :func:`~prunekit.prune.prune_model` is given for a schedule's target ``sparsity``: the
        number, or the plan scaled by ``sparsity / plan_sparsity``.

        Example:
            >>> PruneSpec(plan=(("fc1", 90.0), ("fc2", 50.0)), plan_sparsity=80.0).target(40.0)
            {'fc1': 45.0, 'fc2': 25.0}
        """
        if self.plan is None:
            return sparsity
        scale = sparsity / self.plan_sparsity if self.plan_sparsity else 0.0
        return {pattern: min(k * scale, 99.99) for pattern, k in self.plan}

    def apply(self, model: nn.Module, sparsity: float, *, mask: Mask | None = None, example_inputs: Any = None,
              train_data: Any = None) -> Mask:
        """Prune ``model`` in place to ``sparsity`` percent in total, as this spec says (shrinking ``mask``);
        ``train_data`` is the calibration data of a criterion that needs it. With an N:M ``pattern``, ``sparsity``
        is 0 (nothing pruned) or the pattern's own."""
        if self.pattern is not None:
            if sparsity == 0:
                return prune_model(model, self.method, 0.0, layers=self.layers, mask=mask,
                                   include_output=self.include_output)
            implied = pattern_sparsity(*parse_pattern(self.pattern))
            if abs(sparsity - implied) > 1e-9:
                raise ConfigError(f"an N:M pattern {self.pattern} prunes to {implied:g}% in one step; a schedule asked "
                                  f"for {sparsity:g}%: use it with the oneshot or finetune schedule")
        return prune_model(model, self.method, None if self.pattern else self.target(sparsity), scope=self.scope,
                           layers=self.layers, mask=mask, include_output=self.include_output,
                           example_inputs=example_inputs, criterion=self.criterion,
                           calibration_batches=self.calibration_batches, pattern=self.pattern,
                           reconstruct=self.reconstruct, calibration=train_data if self.needs_data else None)

    @property
    def needs_data(self) -> bool:
        """Whether pruning reads training data (``taylor``, ``wanda``, ``sparsegpt``, or ``reconstruct``)."""
        return needs_data(self.criterion) or self.reconstruct
