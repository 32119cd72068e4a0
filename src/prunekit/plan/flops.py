"""FLOP-reduction targets: the sparsity at which a pruning method cuts a model's MACs by a factor.

A sweep compares criteria at equal cost, so its levels may be given as MAC reductions (``2.0``: half
the multiply-accumulates of the dense model) instead of sparsities. With layer-wise scope, how many
units or weights each layer loses depends on the sparsity alone, not on which ones a criterion picks,
so the MACs of a level are the same for every criterion; :func:`sparsity_for_reduction` finds the
smallest sparsity reaching the target by bisection on the model's architecture. MACs are counted as
the sweep's points count them (``flops_effective``: the multiply-accumulates of the non-zero weights).
Traced models mask the readers' inputs of a removed unit too, so that is the compact model's count; an
``nn.Sequential`` pruned layer by layer keeps those inputs until compaction, so its count is higher than
the compact model's (52.5% of the units of the MLP below leave 50% of the masked MACs, 36% compacted).

Example:
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 10))
    >>> k = sparsity_for_reduction(model, "unit", 2.0, input_shape=(100,))
    >>> round(k, 1)
    52.5
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..prune import Pruner, PruneSpec
from ..prune.report import describe_pruned
from ..structure import ModelStructure
from .request import solver_spec, solver_structure


def mac_ratio(model: nn.Module, spec: PruneSpec | str, sparsity: float, *, input_shape: Sequence[int] | None = None,
              example_inputs: Any = None, structure: ModelStructure | None = None, scope: str | None = None,
              layers=None) -> float:
    """Effective / dense MACs of ``model`` pruned by ``spec`` (or a method name, with ``scope``/``layers``
    loose) to ``sparsity`` (on a copy; ``model`` is unchanged). ``structure``: reuse one trace."""
    spec = solver_spec(spec, scope=scope, layers=layers)
    structure = solver_structure(model, example_inputs, structure)
    pruned = copy.deepcopy(model)
    mask = Pruner(pruned, spec, structure=structure).prune(sparsity)
    counts = describe_pruned(pruned, mask, spec.method, input_shape, example_inputs)
    if not counts["flops_dense"]:
        raise ConfigError("FLOP targets need the model's MACs: give the data's input shape or example inputs")
    return counts["flops_effective"] / counts["flops_dense"]


@torch.no_grad()
def sparsity_for_reduction(model: nn.Module, spec: PruneSpec | str, reduction: float, *,
                           input_shape: Sequence[int] | None = None, example_inputs: Any = None, steps: int = 14,
                           scope: str | None = None, layers=None) -> float:
    """The smallest sparsity (percent, to 0.01) at which ``spec`` (or a method name, with ``scope``/``layers``
    loose) leaves at most ``1 / reduction`` of the dense MACs. The model is traced at most once.

    Raises:
        ConfigError: for a reduction not above 1, or one no sparsity below 99.9% reaches (the output
            layer and every group's last unit are never pruned).
    """
    if not reduction > 1:
        raise ConfigError(f"a FLOP reduction must be a factor above 1 (e.g. 2 for half the MACs), got {reduction!r}")
    goal = 1.0 / reduction
    spec = solver_spec(spec, scope=scope, layers=layers)
    kwargs = dict(input_shape=input_shape, example_inputs=example_inputs,
                  structure=solver_structure(model, example_inputs))
    low, high = 0.0, 99.9
    best = mac_ratio(model, spec, high, **kwargs)
    if best > goal:
        raise ConfigError(f"a {reduction:g}x FLOP reduction is out of reach for {spec.method} pruning: even at "
                          f"{high}% the model keeps {100 * best:.1f}% of its MACs (at most {100 * goal:.1f}% needed)")
    for _ in range(steps):
        middle = (low + high) / 2
        if mac_ratio(model, spec, middle, **kwargs) <= goal:
            high = middle
        else:
            low = middle
    return round(high + 0.005, 2)
