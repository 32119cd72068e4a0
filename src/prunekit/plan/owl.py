"""OWL: outlier-weighted layer-wise sparsity for language models (Yin et al. 2024).

Blocks whose weights carry more activation outliers are pruned less. On the dense model, each pruned
layer's Wanda scores ``|W| * ||X||`` are measured on the calibration data (block by block,
:func:`~prunekit.prune.calibration.layer_by_layer`, nothing pruned); a block's outlier ratio is the share of
its scores above ``threshold`` times their mean. The ratios are spread linearly over
``[target - spread, target + spread]`` (most outliers: lowest sparsity) around the target, and the result
is a per-layer plan ``{block pattern: percent}`` that any weight criterion prunes to. A model without a stack
of repeated blocks gets one entry per layer.

Example:
    >>> import torch
    >>> from torch import nn
    >>> class Net(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.blocks = nn.ModuleList(nn.Linear(32, 32) for _ in range(3))
    ...         self.head = nn.Linear(32, 2)
    ...     def forward(self, x):
    ...         for block in self.blocks:
    ...             x = x + block(x)
    ...         return self.head(x)
    >>> _ = torch.manual_seed(0)
    >>> net = Net()
    >>> with torch.no_grad():
    ...     net.blocks[1].weight.view(-1)[::50] *= 30  # outliers: block 1 is pruned least
    >>> plan = owl_plan(net, 50.0, torch.randn(64, 32))
    >>> min(plan, key=plan.get), round(sum(plan.values()) / 3, 6)
    ('blocks.1.*', 50.0)
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..prune import check_sparsity, select_layers
from ..prune.calibration import layer_by_layer, take_batches
from ..prune.wanda import wanda_scores
from .blocks import block_patterns

THRESHOLD = 5.0
"""A score is an outlier above this many times its block's mean score (OWL's M)."""
SPREAD = 8.0
"""Block sparsities lie within this many percentage points of the target (OWL's lambda, in percent)."""


def owl_plan(model: nn.Module, sparsity: float, calibration: Any, *, batches: int = 32,
             layers: Optional[Sequence[str]] = None, threshold: float = THRESHOLD, spread: float = SPREAD,
             progress: bool = False) -> dict[str, float]:
    """The OWL plan for ``sparsity`` percent: ``{block (or layer) pattern: percent}`` averaging ``sparsity``.

    Raises:
        ConfigError: for a sparsity that leaves no room for the spread (below ``spread`` or above
            ``100 - spread``), or bad ``threshold``/``spread``.
    """
    check_sparsity(sparsity)
    if not threshold > 0 or not 0 <= spread < 50:
        raise ConfigError(f"OWL needs a threshold > 0 and a spread in [0, 50) points, got {threshold!r}, {spread!r}")
    if not spread <= sparsity <= 100 - spread:
        raise ConfigError(f"an OWL plan spreads block sparsities {spread:g} points around the target: the target "
                          f"must lie in [{spread:g}, {100 - spread:g}], got {sparsity:g}")
    targets = dict(select_layers(model, "weight", layers))
    group_of = {name: pattern for pattern, names in block_patterns(model, layers).items() for name in names}
    groups: dict[str, list[torch.Tensor]] = {}

    def visit(name: str, module: nn.Module, stats: dict) -> None:
        groups.setdefault(group_of[name], []).append(wanda_scores(module.weight, stats["squares"]).flatten().float())

    layer_by_layer(model, targets, take_batches(calibration, batches), ("squares",), visit, desc="owl",
                   progress=progress)  # nothing is pruned: every block sees the dense model
    ratios = {}
    for group, scores in groups.items():
        values = torch.cat(scores)
        ratios[group] = float((values > threshold * values.mean()).float().mean())
    low, high = min(ratios.values()), max(ratios.values())
    if high == low:
        return {group: float(sparsity) for group in ratios}
    spreads = {g: 2 * spread * (r - low) / (high - low) for g, r in ratios.items()}
    mean = sum(spreads.values()) / len(spreads)
    return {g: float(sparsity - (s - mean)) for g, s in spreads.items()}
