"""The weight-prunable layers of a model grouped by the repeated block that holds them (a decoder layer of
a language model's stack), as the plan patterns OWL and block sensitivity give per-block sparsities with.

Example:
    >>> from torch import nn
    >>> class Net(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4)) for _ in range(2))
    ...         self.head = nn.Linear(4, 2)
    >>> block_patterns(Net())
    {'blocks.0.*': ['blocks.0.0', 'blocks.0.1'], 'blocks.1.*': ['blocks.1.0', 'blocks.1.1']}
"""

from __future__ import annotations

import glob
from typing import Optional, Sequence

from torch import nn

from ..prune import select_layers
from ..prune.blockwise import find_stack


def block_patterns(model: nn.Module, layers: Optional[Sequence[str]] = None) -> dict[str, list[str]]:
    """``{block pattern: [layer names]}`` of the layers weight pruning selects (``layers``: patterns; by
    default every prunable layer but the output), grouped by the block of the model's stack that holds
    them (``"model.layers.3.*"``); a model with no such stack gets one (escaped) pattern per layer."""
    targets = dict(select_layers(model, "weight", layers))
    found = find_stack(model, targets)
    groups: dict[str, list[str]] = {}
    for name in targets:
        if found is None:
            pattern = glob.escape(name)
        else:
            prefix = found[0]
            index = name[len(prefix) + 1:].split(".", 1)[0] if prefix else name.split(".", 1)[0]
            pattern = f"{glob.escape(prefix)}.{index}.*" if prefix else f"{index}.*"
        groups.setdefault(pattern, []).append(name)
    return groups
