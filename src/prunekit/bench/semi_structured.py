"""What an N:M (semi-structured) pattern buys on this machine, said plainly.

Sparse tensor cores (NVIDIA Ampere and later) run 2:4 weights at up to twice the dense throughput, and
``torch.sparse.to_sparse_semi_structured`` reaches them on CUDA; torch has no CPU kernel for the pattern
(torch 2.13 refuses CPU tensors). On a CPU prunekit's bitmask kernel (:mod:`prunekit.kernels`) runs N:M
weights, reading one bit per weight, the size of 2:4's 2-bit positions; without the compiled kernels a 2:4
model runs as a dense one with zeros.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from prunekit.prune import prune_model
    >>> model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> mask = prune_model(model, "weight", pattern="2:4")
    >>> nm_layers(model, mask)
    {'0.weight': (2, 4)}
"""

from __future__ import annotations

from typing import Mapping, Optional

import torch
from torch import Tensor, nn

from ..kernels import available
from ..prune.nm import detect_pattern


def nm_layers(model: nn.Module, mask: Optional[Mapping[str, Tensor]]) -> dict[str, tuple[int, int]]:
    """The masked weights of ``model`` pruned to an N:M pattern (exactly N kept in every group), with their ``(n, m)``."""
    if not mask:
        return {}
    params = dict(model.named_parameters())
    found = {}
    for name, keep in mask.items():
        if name in params and keep.dim() >= 2 and not bool(keep.all()):
            pattern = detect_pattern(keep)
            # a pattern pruned on purpose keeps exactly n in every group (a random mask merely fits a loose one)
            if pattern is not None and bool((keep.reshape(-1, pattern[1]).sum(dim=1) == pattern[0]).all()):
                found[name] = pattern
    return found


def semi_structured_note(model: nn.Module, mask: Optional[Mapping[str, Tensor]], device: torch.device) -> Optional[str]:
    """A note for the latency table when the pruned weights hold an N:M pattern (``None`` otherwise)."""
    layers = nm_layers(model, mask)
    if not layers:
        return None
    patterns = ", ".join(sorted({f"{n}:{m}" for n, m in layers.values()}))
    where = f"{len(layers)} weight tensors hold an N:M pattern ({patterns})"
    if device.type != "cuda" and available():
        return (f"note: {where}. torch has no CPU kernel for N:M sparsity; prunekit's bitmask kernel runs these "
                f"weights (one bit per weight: the bytes of 2:4's 2-bit positions) where measured faster: the "
                f"'sparse' rows. The export stores them as N:M values + positions.")
    if device.type != "cuda":
        return (f"note: {where}. torch has no CPU kernel for N:M sparsity (to_sparse_semi_structured needs a CUDA "
                f"GPU with sparse tensor cores), so here the pattern buys no speed: the model runs as a dense one with "
                f"zeros (the 'dense' row). The export stores these weights as N:M values + positions.")
    return (f"note: {where}. On this GPU torch.sparse.to_sparse_semi_structured can run 2:4 fp16/bf16 Linear layers "
            f"on sparse tensor cores; prunekit does not time that path yet, so the rows above are dense kernels.")
