"""Wanda (Sun et al. 2023): prune by weight magnitude times the norm of the input feature it reads.

A weight ``W[i, j]`` scores ``|W[i, j]| * ||X_j||_2``, with ``X_j`` the ``j``-th input feature over all
calibration tokens (for a conv, the unfolded input column, per conv group), and each output row
loses the same share of its weights: the paper's per-output comparison group, which it finds matters
for large models. Nothing is retrained or updated.

Example:
    >>> w = torch.tensor([[1.0, 2.0], [3.0, 0.5]])
    >>> scores = wanda_scores(w, torch.tensor([[16.0, 1.0]]))  # squared norms: feature 0 is 4x larger
    >>> scores
    tensor([[ 4.0000,  2.0000],
            [12.0000,  0.5000]], dtype=torch.float64)
    >>> rowwise_keep_mask(scores, 50.0).int().tolist()
    [[1, 0], [1, 0]]
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .select import num_to_prune


def wanda_scores(weight: Tensor, squared_norms: Tensor) -> Tensor:
    """``|W| * ||X_j||`` shaped like ``weight`` (``[out, ...]``), from the inputs' ``[groups, features]``
    sums of squares (one row per conv group; the output rows split evenly over the groups)."""
    groups = squared_norms.shape[0]
    w = weight.detach().to(torch.float64).reshape(groups, weight.shape[0] // groups, -1)
    norms = squared_norms.to(w.device, torch.float64).sqrt().unsqueeze(1)
    return (w.abs() * norms).reshape(weight.shape)


def rowwise_keep_mask(scores: Tensor, sparsity: float, previous: Optional[Tensor] = None) -> Tensor:
    """Prune the lowest scores of each output row, ``round(sparsity / 100 * numel)`` in all, spread evenly
    over the rows (ties: lower index first); entries pruned in ``previous`` stay pruned and count."""
    rows = scores.shape[0]
    flat = scores.detach().to(torch.float64).reshape(rows, -1)
    if previous is not None:
        flat = flat.masked_fill(~previous.reshape(rows, -1).to(flat.device), float("-inf"))
    total = num_to_prune(sparsity, flat.numel())
    bounds = torch.tensor([round(total * r / rows) for r in range(rows + 1)], device=flat.device)
    counts = (bounds[1:] - bounds[:-1]).unsqueeze(1)
    order = torch.sort(flat, dim=1, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order).contiguous())
    keep = rank >= counts
    if previous is not None:
        keep &= previous.reshape(rows, -1).to(keep.device)
    return keep.reshape(scores.shape)
