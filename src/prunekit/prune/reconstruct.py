"""Exact layer-wise reconstruction: with a layer's mask fixed, re-solve the weights that remain.

For one output row ``w`` and the calibration inputs ``X`` of the (already pruned) model, the kept
weights ``S`` are set to the damped least-squares solution of ``X_S w_S ~ X w``:
``w_S = (H_SS + lambda I)^-1 (H w)_S`` with ``H = X^T X`` and ``lambda`` a fraction of ``H``'s mean
diagonal. This is the optimum that SparseGPT's column-by-column update approximates (the
reconstruction of OBC, Frantar et al. 2022, and AdaPrune, Hubara et al. 2021, solved exactly); it works
after any criterion's mask. Rows with the same number of kept weights are solved in batches.

Example:
    >>> _ = torch.manual_seed(0)
    >>> x = torch.randn(200, 6, dtype=torch.float64)
    >>> w = torch.randn(2, 6, dtype=torch.float64)
    >>> keep = torch.tensor([[1, 1, 1, 0, 0, 0], [0, 1, 0, 1, 0, 1]], dtype=torch.bool)
    >>> new = reconstruct_rows(w, x.T @ x, keep, damp=1e-9)
    >>> bool(torch.equal(new == 0, ~keep))
    True
    >>> direct = torch.linalg.lstsq(x[:, :3], x @ w[0]).solution
    >>> bool(torch.allclose(new[0, :3], direct, atol=1e-6))
    True
"""

from __future__ import annotations

import torch
from torch import Tensor

MEMORY_BYTES = 256 * 2**20
"""At most this much for one batch of gathered ``[rows, kept, kept]`` systems."""


def reconstruct_rows(weight: Tensor, hessian: Tensor, keep: Tensor, damp: float = 0.01) -> Tensor:
    """The ``[rows, cols]`` weights with pruned entries zero and kept ones re-solved (float64).

    Args:
        weight: the layer's weights before this pruning step (what the outputs should match).
        hessian: ``X^T X`` of the layer's calibration inputs.
        keep: the bool keep mask.
        damp: the fraction of the mean diagonal of ``hessian`` added to its diagonal.
    """
    w = weight.detach().to(torch.float64)
    h = hessian.detach().to(w.device, torch.float64).clone()
    dead = torch.diagonal(h) == 0
    h[dead, dead] = 1.0
    h += damp * torch.diagonal(h).mean() * torch.eye(h.shape[0], dtype=h.dtype, device=h.device)
    keep = keep.to(w.device)
    targets = (h @ w.T).T                       # row r: (H w_r), what the kept weights must reproduce
    out = torch.zeros_like(w)
    counts = keep.sum(dim=1)
    for k in torch.unique(counts).tolist():
        rows = torch.nonzero(counts == k).flatten()
        if k == 0:
            continue
        if k == w.shape[1]:  # nothing pruned in these rows: the weights are their own optimum
            out[rows] = w[rows]
            continue
        chunk = max(1, MEMORY_BYTES // (8 * k * k))
        for start in range(0, len(rows), chunk):
            r = rows[start:start + chunk]
            kept = torch.sort(keep[r].to(torch.int8), dim=1, descending=True, stable=True).indices[:, :k]
            systems = h[kept.unsqueeze(2), kept.unsqueeze(1)]
            rhs = torch.gather(targets[r], 1, kept).unsqueeze(2)
            solution = torch.cholesky_solve(rhs, torch.linalg.cholesky(systems)).squeeze(2)
            out[r.unsqueeze(1), kept] = solution
    return out
