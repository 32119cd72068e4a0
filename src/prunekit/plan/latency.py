"""Pruning to a latency measured on this machine, not to a FLOP count.

:func:`~prunekit.bench.compact_latency.compact_latency_ratio` times the compacted model against the
dense one (interleaved medians, one run). :func:`plan_for_latency` measures every group's sensitivity curve *and* the latency each step
buys (a latency table per group width, :func:`~.sensitivity.layer_sensitivity` with ``latency_batch``),
allocates the groups' widths greedily by accuracy lost per latency saved
(:func:`~.allocate.allocate` with ``kind="latency"``), then measures the planned model; while it is
still slower than the target it asks the allocation for twice the shortfall more and measures again,
then bisects back so as to prune no more than the target needs. The plan it keeps is measured once more:
the search picked it because its timing was low, and noise favours such a pick, so the latency it reports
is that fresh measurement, never the table's prediction; a plan whose fresh measurement misses the target
sends the search on.

Example:
    >>> import torch
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(8, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 3))
    >>> x = torch.randn(256, 8); y = (x[:, 0] > 0).long()
    >>> result = plan_for_latency(model, 0.9, (x, y), x[:2], batch_size=256, sparsities=(50, 90), progress=False)
    >>> sorted(result.plan), result.measured_ratio <= 0.9
    (['0', '2'], True)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from torch import nn

from ..bench.compact_latency import compact_latency_ratio
from ..errors import ConfigError
from ..prune import Pruner, PruneSpec
from .allocate import allocate
from .request import solver_spec, solver_structure
from .sensitivity import GRID, Sensitivity, layer_sensitivity

ATTEMPTS = 14
"""How many latency measurements of plans are made, at most, while looking for one that meets the target."""
REFINE = 4
"""Measured plans spent afterwards pruning no more than needed (bisection on the allocation's goal)."""


@dataclass(frozen=True)
class LatencyTarget:
    """A target measured, not counted: the compacted model must run in at most ``ratio`` x the dense latency
    at ``batch`` on this machine's CPU. ``align``: only group widths that are multiples of it;
    ``bn_batches``: BatchNorm statistics re-estimated before each evaluation of the curves (0: off).

    Example:
        >>> LatencyTarget(0.5, batch=64)
        LatencyTarget(ratio=0.5, batch=64, align=None, bn_batches=8)
    """

    ratio: float
    batch: int = 256
    align: Optional[int] = None
    bn_batches: int = 8

    def __post_init__(self) -> None:
        if isinstance(self.ratio, bool) or not isinstance(self.ratio, (int, float)) or not 0 < self.ratio < 1:
            raise ConfigError(f"a latency target is a fraction of the dense latency in (0, 1), e.g. 0.5; "
                              f"got {self.ratio!r}")
        if isinstance(self.batch, bool) or not isinstance(self.batch, int) or self.batch < 1:
            raise ConfigError(f"a latency target's batch size is a positive integer, got {self.batch!r}")
        if self.align is not None and (isinstance(self.align, bool) or not isinstance(self.align, int)
                                       or self.align < 1):
            raise ConfigError(f"channel alignment must be a positive integer such as 8, got {self.align!r}")


@dataclass
class LatencyPlan:
    """A per-group plan, the latency ratio measured for it, the curves it was allocated from, and every
    plan measured on the way as ``(goal: % of the dense latency to save, measured ratio)``."""

    plan: dict[str, float]
    measured_ratio: float
    target_ratio: float
    curves: Sensitivity
    tried: list[tuple[float, float]]


def plan_for_latency(model: nn.Module, target_ratio: float, validation: Any, example_inputs: Any, *,
                     spec: Optional[PruneSpec] = None, batch_size: int = 256, sparsities: Sequence[float] = GRID,
                     input_shape: Optional[Sequence[int]] = None, repeats: int = 10, align: Optional[int] = None,
                     bn_batches: int = 8, progress: bool = True, criterion: Optional[str] = None,
                     layers=None) -> LatencyPlan:
    """Per-group unit sparsities whose compacted model measures at most ``target_ratio`` x the dense latency.

    ``spec``: what prunes each group (default ``PruneSpec("unit")``; ``criterion``, ``layers``: its fields
    given loose, deprecated). The model is traced at most once, on ``example_inputs``, for the curves and
    every measured plan.

    ``align``: only widths that are multiples of it (see :func:`~.sensitivity.aligned_grid`).
    ``bn_batches``: batches of ``validation`` BatchNorm statistics are re-estimated on before each evaluation
    of the curves (see :func:`~.sensitivity.layer_sensitivity`).

    Raises:
        ConfigError: for a ratio outside (0, 1), or a target that even the grid's largest sparsities
            (measured) do not reach, naming the latency they do reach.
    """
    if not 0 < target_ratio < 1:
        raise ConfigError(f"a latency target is a fraction of the dense latency in (0, 1), e.g. 0.5; got {target_ratio!r}")
    if align is not None and (isinstance(align, bool) or not isinstance(align, int) or align < 1):
        raise ConfigError(f"channel alignment must be a positive integer such as 8, got {align!r}")
    spec = check_latency_spec(solver_spec(spec if spec is not None else "unit", criterion=criterion, layers=layers))
    structure = solver_structure(model, example_inputs)
    curves = layer_sensitivity(model, spec, validation, sparsities=sparsities, example_inputs=example_inputs,
                               structure=structure, input_shape=input_shape, latency_batch=batch_size,
                               align=align, bn_batches=bn_batches, progress=progress)

    def measured(plan: dict[str, float]) -> float:
        mask = Pruner(copy.deepcopy(model), spec, structure=structure).prune(
            plan, calibration=validation if spec.needs_data else None)
        return compact_latency_ratio(model, mask, example_inputs, structure=structure, batch_size=batch_size,
                                     repeats=repeats)

    deepest = {name: max(r["sparsity"] for r in curves.curve(name)) for name in curves.layers()}
    tried: list[tuple[float, float]] = []  # (goal, measured ratio) of every measurement, confirmations included

    def attempt(goal: float) -> tuple[dict[str, float], float]:
        try:
            plan = allocate(curves, min(goal, 99.0), "latency")
        except ConfigError:
            plan = deepest
        ratio = measured(plan)
        tried.append((goal, ratio))
        return plan, ratio

    goal, missed = 100 * (1 - target_ratio), None
    while True:
        plan, ratio, goal, missed = _search(attempt, goal, missed, target_ratio, deepest, batch_size, tried)
        confirmed = measured(plan)  # a fresh measurement: the search kept the plan whose timing was lowest
        tried.append((goal, confirmed))
        if confirmed <= target_ratio:
            return LatencyPlan(plan, confirmed, target_ratio, curves, tried)
        if len(tried) >= ATTEMPTS:
            _not_reached(target_ratio, batch_size, confirmed)
        missed, goal = goal, goal + max(2 * 100 * (confirmed - target_ratio), 1.0)


def check_latency_spec(spec: PruneSpec) -> PruneSpec:
    """``spec``, if a latency target can be met with it (its method removes whole units)."""
    if not spec.removes_units:
        raise ConfigError("a latency target removes whole units: use method 'unit'")
    return spec


def _search(attempt, goal: float, missed: Optional[float], target: float, deepest: dict[str, float],
            batch_size: int, tried: list) -> tuple[dict[str, float], float, float, Optional[float]]:
    """Raise the allocation's goal until a measured plan meets the target, then bisect the goal back
    between the last miss and the hit; returns ``(plan, ratio, goal, last missed goal)``."""
    met = None  # (plan, ratio, goal) of the slowest plan that meets the target
    while met is None and len(tried) < ATTEMPTS:
        plan, ratio = attempt(goal)
        if ratio <= target:
            met = (plan, ratio, goal)
        elif plan == deepest:
            raise ConfigError(f"latency target {target:g}x is out of reach at batch {batch_size}: the smallest "
                              f"model of the grid (every group at its largest sparsity, up to "
                              f"{max(deepest.values()):g}%) measures {ratio:.3f}x the dense latency here")
        else:
            missed, goal = goal, goal + max(2 * 100 * (ratio - target), 1.0)  # the table was optimistic
    if met is None:
        _not_reached(target, batch_size, tried[-1][1])
    low = missed if missed is not None else 0.0
    for _ in range(REFINE):  # then prune no more than needed
        goal = (low + met[2]) / 2
        if met[2] - low < 1.0:
            break
        plan, ratio = attempt(goal)
        if ratio <= target:
            met = (plan, ratio, goal)
        else:
            low = goal
    return met[0], met[1], met[2], low if low > 0 else missed


def _not_reached(target: float, batch_size: int, last: float):
    raise ConfigError(f"latency target {target:g}x not reached in {ATTEMPTS} measured plans at batch {batch_size} "
                      f"(the last measured {last:.3f}x): the latency table's predictions are off here, or the "
                      "timings are noisy (is something else running?); try a finer grid of sparsities or a "
                      "slightly lower target")
