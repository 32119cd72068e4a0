"""The latency of a pruned model once compacted, as a ratio to the dense model measured in the same run.

Example:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(64, 2048), nn.ReLU(), nn.Linear(2048, 2048), nn.ReLU(), nn.Linear(2048, 10))
    >>> keep = torch.ones(2048, 64, dtype=torch.bool); keep[256:] = False
    >>> ratio = compact_latency_ratio(model, {"0.weight": keep}, torch.randn(2, 64), batch_size=64, repeats=9)
    >>> ratio < 0.8   # 7/8 of the first hidden layer's units gone: far less work in the second layer
    True
"""

from __future__ import annotations

import copy
from typing import Any, Mapping, Optional

import torch
from torch import nn

from ..batches import make_inputs
from ..compact import compact
from ..prune.mask import as_mask
from ..structure import ModelStructure, model_structure
from ..timing import measure


@torch.inference_mode()
def compact_latency_ratio(model: nn.Module, mask: Optional[Mapping[str, torch.Tensor]], example_inputs: Any, *,
                          structure: Optional[ModelStructure] = None, batch_size: int = 256,
                          repeats: int = 10) -> float:
    """Median latency of ``model`` with ``mask`` applied and compacted, over the dense ``model``'s, at
    ``batch_size`` on the CPU (both measured here, interleaved). ``model`` is not modified.

    ``example_inputs``: one batch (resized to ``batch_size``); ``structure``: the model's
    :func:`~prunekit.structure.model_structure` to compact with (default: an ``nn.Sequential`` is walked,
    any other model traced on ``example_inputs``): pass one to time many masks on one trace."""
    dense = copy.deepcopy(model).cpu().eval()
    pruned = copy.deepcopy(dense)
    if mask is not None:
        as_mask(mask).apply_(pruned)
    if structure is None:
        structure = model_structure(model, example_inputs, walk_sequential=True)
    small = compact(pruned, structure=structure).model.eval()
    args, kwargs = make_inputs(None, example_inputs)(batch_size)
    times = measure({"dense": lambda: dense(*args, **kwargs), "pruned": lambda: small(*args, **kwargs)},
                    repeats=repeats, warmup=2)
    return times["pruned"] / times["dense"]
