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
from ..timing import measure


@torch.inference_mode()
def compact_latency_ratio(model: nn.Module, mask: Optional[Mapping[str, torch.Tensor]], example_inputs: Any, *,
                          batch_size: int = 256, repeats: int = 10) -> float:
    """Median latency of ``model`` with ``mask`` applied and compacted, over the dense ``model``'s, at
    ``batch_size`` on the CPU (both measured here, interleaved). ``model`` is not modified."""
    dense = copy.deepcopy(model).cpu().eval()
    pruned = copy.deepcopy(dense)
    if mask is not None:
        as_mask(mask).apply_(pruned)
    traced = None if isinstance(pruned, nn.Sequential) else example_inputs
    small = compact(pruned, example_inputs=traced).model.eval()
    args, kwargs = make_inputs(None, example_inputs)(batch_size)
    times = measure({"dense": lambda: dense(*args, **kwargs), "pruned": lambda: small(*args, **kwargs)},
                    repeats=repeats, warmup=2)
    return times["pruned"] / times["dense"]
