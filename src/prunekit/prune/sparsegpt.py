"""SparseGPT (Frantar & Alistarh 2023): prune a weight matrix and update the weights that remain.

For a layer ``y = W x`` with inputs ``X`` (rows of features), removing weights while keeping ``W X``
close is a least-squares problem per output row with the Hessian ``H = X^T X``. SparseGPT solves it
column by column, in blocks: inside a block of columns the weights to prune are chosen by the
optimal brain surgeon score ``w^2 / [H^-1]_cc^2``, every pruned (or, for the columns not pruned, kept)
weight's error is spread over the columns to its right through the Cholesky factor of ``H^-1``, and
the accumulated error of a block is applied to the rest of the matrix at once (the paper's lazy batch
updates). ``H`` is damped by a fraction of its mean diagonal so it can be inverted.

This module is the algorithm on one matrix; :mod:`~prunekit.prune.posttrain` feeds it the layers in
order with their calibration inputs.

Example:
    >>> _ = torch.manual_seed(0)
    >>> x = torch.randn(256, 8, dtype=torch.float64)
    >>> w = torch.randn(3, 8, dtype=torch.float64)
    >>> new, keep = sparsegpt_prune(w, x.T @ x, 50.0)
    >>> int(keep.sum()), bool(torch.equal(new, new * keep))
    (12, True)
    >>> same, _ = sparsegpt_prune(w, x.T @ x, 0.0)
    >>> torch.equal(same, w)
    True
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..errors import ConfigError
from .nm import Pattern, nm_keep_mask
from .select import keep_mask_of_count, num_to_prune


def sparsegpt_prune(weight: Tensor, hessian: Tensor, sparsity: float, *, pattern: Optional[Pattern] = None,
                    previous: Optional[Tensor] = None, block_size: int = 128, damp: float = 0.01,
                    name: str = "the layer") -> tuple[Tensor, Tensor]:
    """Prune the ``[rows, cols]`` matrix ``weight`` given its inputs' ``[cols, cols]`` ``hessian``.

    Args:
        weight: the weight matrix (a conv filter flattened: ``weight.flatten(1)``).
        hessian: ``X^T X`` of the layer's inputs (any positive scale).
        sparsity: percent of the matrix's entries to prune (``round(sparsity / 100 * numel)`` in all,
            counting those pruned in ``previous``; the rest spread over the blocks in proportion to their
            columns); ignored with ``pattern``.
        pattern: ``(n, m)``: keep ``n`` of every ``m`` consecutive entries of each row instead.
        previous: a bool keep mask; its pruned entries stay pruned and count toward the target.
        block_size: columns per block (rounded up to a multiple of ``m`` with a pattern).
        damp: the fraction of the mean diagonal of ``hessian`` added to its diagonal.
        name: the layer's name, for error messages.

    Returns:
        ``(new weight, keep mask)`` in float64; pruned entries are exactly zero.

    Raises:
        ConfigError: if the damped Hessian cannot be factorised (e.g. NaN inputs).
    """
    rows, cols = weight.shape
    w = weight.detach().to(torch.float64).clone()
    h = hessian.detach().to(w.device, torch.float64).clone()
    if previous is not None:
        w = w.masked_fill(~previous.to(w.device), 0.0)
    if sparsity == 0 and pattern is None and previous is None:
        return w, torch.ones_like(w, dtype=torch.bool)
    u = inverse_hessian_factor(h, damp, name)
    step = block_size if pattern is None else -(-block_size // pattern[1]) * pattern[1]
    extra = 0 if pattern is not None else num_to_prune(sparsity, rows * cols)
    pruned_before = torch.zeros(cols + 1, dtype=torch.long)  # entries pruned in previous, left of each column
    if previous is not None:
        pruned_before[1:] = (~previous).sum(dim=0).cumsum(0).cpu()
        extra = max(0, extra - int(pruned_before[-1]))
    keep = torch.ones_like(w, dtype=torch.bool)
    wt = w.T.contiguous()  # one column per row: the loop below reads and updates contiguous memory
    for start in range(0, cols, step):
        end = min(start + step, cols)
        block, errors = wt[start:end].clone(), torch.zeros(end - start, rows, dtype=w.dtype, device=w.device)
        inverse = u[start:end, start:end]
        scale = torch.diagonal(inverse).reciprocal().unsqueeze(1)
        prev = None if previous is None else previous[:, start:end].to(w.device)
        if pattern is None:
            count = int(pruned_before[end] - pruned_before[start]) + round(extra * end / cols) - round(extra * start / cols)
            keep[:, start:end] = keep_mask_of_count(_obs_scores(block.T, inverse), count, prev)
            drop = (~keep[:, start:end]).T.to(w.dtype) * scale  # [columns, rows]: 1 / [H^-1]_cc where pruned
        else:
            drop = torch.zeros_like(block)
        for i in range(end - start):
            if pattern is not None and i % pattern[1] == 0:
                group = slice(i, i + pattern[1])
                chosen = nm_keep_mask(_obs_scores(block[group].T, inverse[group, group]), *pattern,
                                      None if prev is None else prev[:, group])
                keep[:, start + i:start + i + pattern[1]] = chosen
                drop[group] = (~chosen).T.to(w.dtype) * scale[group]
            error = torch.mul(block[i], drop[i], out=errors[i])  # the pruned weight over [H^-1]_cc, else 0
            block[i:].addr_(inverse[i, i:], error, alpha=-1)  # spread over this column and those to its right
        wt[start:end] = block
        wt[end:] -= u[start:end, end:].T @ errors
    w = wt.T
    return w * keep, keep


def _obs_scores(block: Tensor, inverse: Tensor) -> Tensor:
    """The saliency ``w^2 / [H^-1]_cc^2`` of every entry of a block (through the Cholesky factor's diagonal)."""
    return block.pow(2) / torch.diagonal(inverse).pow(2).unsqueeze(0)


def inverse_hessian_factor(hessian: Tensor, damp: float, name: str = "the layer") -> Tensor:
    """The upper Cholesky factor of the damped ``hessian``'s inverse (float64): features never active get a
    unit diagonal, then ``damp`` times the mean diagonal is added to the diagonal (the reference code's
    damping). What SparseGPT and GPTQ spread each column's error with.

    Raises:
        ConfigError: if the damped Hessian is not positive definite (NaN or infinite inputs).
    """
    h = hessian.detach().to(torch.float64).clone()
    dead = torch.diagonal(h) == 0
    h[dead, dead] = 1.0
    h += damp * torch.diagonal(h).mean() * torch.eye(h.shape[0], dtype=h.dtype, device=h.device)
    return _upper_inverse_factor(h, name)


def _upper_inverse_factor(h: Tensor, name: str) -> Tensor:
    """The upper Cholesky factor ``U`` of ``h``'s inverse (``h^-1 = U^T U``), from one factorisation: with
    ``J`` the order-reversing permutation and ``J h J = L L^T``, ``U = J L^-1 J`` (upper triangular, positive
    diagonal), so ``h^-1`` is never formed.

    Example:
        >>> a = torch.randn(6, 6, dtype=torch.float64); h = a @ a.T + torch.eye(6, dtype=torch.float64)
        >>> u = _upper_inverse_factor(h, "x")
        >>> torch.allclose(u.T @ u, torch.linalg.inv(h)) and torch.equal(u, u.triu())
        True
    """
    lower, info = torch.linalg.cholesky_ex(h.flip(0, 1))
    if int(info) == 0:
        identity = torch.eye(h.shape[0], dtype=h.dtype, device=h.device)
        return torch.linalg.solve_triangular(lower, identity, upper=False).flip(0, 1)
    raise ConfigError(f"sparsegpt: the damped Hessian of {name}'s inputs is not positive definite (are there "
                      f"NaN or infinite activations?); use more calibration data or a larger damp")
