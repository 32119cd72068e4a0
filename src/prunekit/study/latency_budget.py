"""Pruning to a latency measured on this machine, not to a FLOP count.

:func:`~prunekit.bench.compact_latency.compact_latency_ratio` times the compacted model against the
dense one (interleaved medians, one run). :func:`plan_for_latency` measures every group's sensitivity curve *and* the latency each step
buys (a latency table per group width, :func:`~.sensitivity.layer_sensitivity` with ``latency_batch``),
allocates the groups' widths greedily by accuracy lost per latency saved
(:func:`~.sensitivity.allocate` with ``kind="latency"``), then measures the planned model; while it is
still slower than the target it asks the allocation for twice the shortfall more and measures again,
then bisects back so as to prune no more than the target needs. The latency it reports is always a
measurement of the planned model, never the table's prediction.

Example:
    >>> import torch
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
    >>> x = torch.randn(256, 8); y = (x[:, 0] > 0).long()
    >>> result = plan_for_latency(model, 0.9, (x, y), x[:2], batch_size=64, sparsities=(50, 90), progress=False)
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
from ..prune import prune_model
from .points import traces
from .sensitivity import GRID, Sensitivity, allocate, layer_sensitivity

ATTEMPTS = 10
"""How many plans are measured, at most, while looking for one that meets the target."""
REFINE = 4
"""Measured plans spent afterwards pruning no more than needed (bisection on the allocation's goal)."""


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
                     batch_size: int = 256, sparsities: Sequence[float] = GRID, criterion: Optional[str] = None,
                     input_shape: Optional[Sequence[int]] = None, layers=None, repeats: int = 10,
                     progress: bool = True) -> LatencyPlan:
    """Per-group unit sparsities whose compacted model measures at most ``target_ratio`` x the dense latency.

    Raises:
        ConfigError: for a ratio outside (0, 1), or a target that even the grid's largest sparsities
            (measured) do not reach, naming the latency they do reach.
    """
    if not 0 < target_ratio < 1:
        raise ConfigError(f"a latency target is a fraction of the dense latency in (0, 1), e.g. 0.5; got {target_ratio!r}")
    curves = layer_sensitivity(model, "unit", validation, sparsities=sparsities, criterion=criterion,
                               example_inputs=example_inputs, input_shape=input_shape, layers=layers,
                               latency_batch=batch_size, progress=progress)
    traced = example_inputs if traces(model, "unit") else None

    def measured(plan: dict[str, float]) -> float:
        mask = prune_model(copy.deepcopy(model), "unit", plan, criterion=criterion, example_inputs=traced)
        return compact_latency_ratio(model, mask, example_inputs, batch_size=batch_size, repeats=repeats)

    deepest = {name: max(r["sparsity"] for r in curves.curve(name)) for name in curves.layers()}
    tried: list[tuple[float, float]] = []  # (goal, measured ratio) of every plan measured

    def attempt(goal: float) -> tuple[dict[str, float], float]:
        try:
            plan = allocate(curves, min(goal, 99.0), "latency")
        except ConfigError:
            plan = deepest
        ratio = measured(plan)
        tried.append((goal, ratio))
        return plan, ratio

    missed, goal = None, 100 * (1 - target_ratio)
    met = None  # (plan, ratio, goal) of the slowest plan that meets the target
    while met is None and len(tried) < ATTEMPTS:  # raise the goal until a measured plan meets the target
        plan, ratio = attempt(goal)
        if ratio <= target_ratio:
            met = (plan, ratio, goal)
        elif plan == deepest:
            raise ConfigError(f"latency target {target_ratio:g}x is out of reach at batch {batch_size}: the smallest "
                              f"model of the grid (every group at its largest sparsity, up to "
                              f"{max(deepest.values()):g}%) measures {ratio:.3f}x the dense latency here")
        else:
            missed, goal = goal, goal + max(2 * 100 * (ratio - target_ratio), 1.0)  # the table was optimistic
    if met is None:
        raise ConfigError(f"latency target {target_ratio:g}x not reached in {ATTEMPTS} measured plans at batch "
                          f"{batch_size} (the last measured {tried[-1][1]:.3f}x): the latency table's predictions "
                          f"are off here; try a finer grid of sparsities or a slightly lower target")
    low = missed if missed is not None else 0.0
    for _ in range(REFINE):  # then prune no more than needed: bisect the goal between a miss and a hit
        goal = (low + met[2]) / 2
        if met[2] - low < 1.0:
            break
        plan, ratio = attempt(goal)
        if ratio <= target_ratio:
            met = (plan, ratio, goal)
        else:
            low = goal
    return LatencyPlan(met[0], met[1], target_ratio, curves, tried)
