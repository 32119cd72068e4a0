"""Semi-structured N:M sparsity: at most N non-zeros in every M consecutive weights of a row.

A weight is viewed as ``[out, in * kh * kw]`` (a conv filter flattened in PyTorch's order, as the
SparseGPT and Wanda reference code and ``torch.sparse.to_sparse_semi_structured`` do); groups are
M consecutive entries of a row. ``2:4`` (keep 2 of every 4) is the pattern sparse tensor cores run.
A layer whose row length is not a multiple of M cannot hold the pattern and is left whole.

Example:
    >>> scores = torch.tensor([[4.0, 1.0, 3.0, 2.0, 0.5, 0.1, 0.2, 0.9]])
    >>> keep = nm_keep_mask(scores, 2, 4)
    >>> keep.int().tolist()
    [[1, 0, 1, 0, 1, 0, 0, 1]]
    >>> nm_violations(keep, 2, 4), pattern_sparsity(2, 4)
    (0, 50.0)
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Mapping, Optional, Union

import torch

from prunekit.errors import ConfigError

Pattern = tuple[int, int]


def parse_pattern(pattern: Union[str, Pattern, None]) -> Optional[Pattern]:
    """``"2:4"`` (or ``(2, 4)``) as ``(n, m)``: keep ``n`` of every ``m``; ``None`` stays ``None``.

    Raises:
        ConfigError: for text that is not ``N:M`` with ``1 <= N < M``.

    Example:
        >>> parse_pattern("2:4"), parse_pattern(None)
        ((2, 4), None)
    """
    if pattern is None:
        return None
    if isinstance(pattern, str):
        found = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", pattern)
        values = (int(found.group(1)), int(found.group(2))) if found else None
    elif isinstance(pattern, (tuple, list)) and len(pattern) == 2 and all(isinstance(v, int) for v in pattern):
        values = (int(pattern[0]), int(pattern[1]))
    else:
        values = None
    if values is None or not 1 <= values[0] < values[1]:
        raise ConfigError(f"an N:M pattern is 'N:M' with 1 <= N < M, keeping N of every M weights "
                          f"(e.g. '2:4'), got {pattern!r}")
    return values


def pattern_sparsity(n: int, m: int) -> float:
    """The sparsity percentage of an N:M pattern: ``100 * (1 - n / m)``."""
    return 100.0 * (1.0 - n / m)


def fits_pattern(weight: torch.Tensor, m: int) -> bool:
    """Whether ``weight``'s rows (``weight[i].numel()``) split into groups of ``m``."""
    return weight.dim() >= 2 and weight[0].numel() % m == 0


def nm_keep_mask(scores: torch.Tensor, n: int, m: int, previous: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Keep the ``n`` highest scores of every ``m`` consecutive entries of each row (ties: lower index).

    Entries pruned in ``previous`` stay pruned (they rank lowest), so a group may keep fewer than ``n``.

    Raises:
        ConfigError: if the rows do not split into groups of ``m``.
    """
    if not fits_pattern(scores, m):
        raise ConfigError(f"an {n}:{m} pattern needs rows whose length is a multiple of {m}; "
                          f"got a tensor of shape {tuple(scores.shape)}")
    groups = scores.detach().to(torch.float64).reshape(-1, m)
    if previous is not None:
        groups = groups.masked_fill(~previous.reshape(-1, m).to(groups.device), -math.inf)
    # rank by (score, -index): a stable descending sort keeps the lower index first among ties
    order = torch.sort(groups, dim=1, descending=True, stable=True).indices
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(1, order[:, :n], True)
    if previous is not None:
        keep &= previous.reshape(-1, m).to(keep.device)
    return keep.reshape(scores.shape)


def nm_violations(tensor: torch.Tensor, n: int, m: int) -> int:
    """How many groups of ``m`` hold more than ``n`` non-zeros (0: the tensor follows the pattern).

    ``tensor`` is a keep mask or a weight; its rows must split into groups of ``m``.
    """
    if not fits_pattern(tensor, m):
        raise ConfigError(f"a tensor of shape {tuple(tensor.shape)} has rows that are not a multiple of {m}")
    return int(((tensor.reshape(-1, m) != 0).sum(dim=1) > n).sum())


def detect_pattern(tensor: torch.Tensor, sizes: tuple[int, ...] = (4, 8, 16)) -> Optional[Pattern]:
    """The tightest ``(n, m)`` pattern that ``tensor`` follows with ``n < m`` (smallest ``n / m``,
    then smallest ``m``), or ``None``.

    Example:
        >>> detect_pattern(torch.tensor([[1.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0]]))
        (1, 4)
    """
    best = None
    for m in sizes:
        if not fits_pattern(tensor, m):
            continue
        n = int((tensor.reshape(-1, m) != 0).sum(dim=1).max()) if tensor.numel() else 0
        n = max(n, 1)
        if n < m and (best is None or n / m < best[0] / best[1]):
            best = (n, m)
    return best


def sparsity_with_pattern(sparsity, pattern: Optional[Pattern]):
    """The sparsity a pruning call means: ``sparsity`` (default 50), or the pattern's own.

    Raises:
        ConfigError: if a pattern comes with a different sparsity or a per-layer plan.
    """
    if pattern is None:
        return 50.0 if sparsity is None else sparsity
    implied = pattern_sparsity(*pattern)
    if sparsity is not None and (isinstance(sparsity, Mapping) or not isinstance(sparsity, (int, float))
                                 or abs(float(sparsity) - implied) > 1e-9):
        raise ConfigError(f"an N:M pattern {pattern[0]}:{pattern[1]} sets the sparsity itself ({implied:g}%); "
                          f"got sparsity={sparsity!r} as well: leave it out")
    return implied


def layers_fitting(targets: list, pattern: Optional[Pattern]) -> list:
    """The ``(name, module)`` targets whose weight rows hold ``pattern``; the others are left whole, with a warning.

    Raises:
        ConfigError: if no target fits.
    """
    if pattern is None:
        return targets
    n, m = pattern
    fit = [(name, mod) for name, mod in targets if fits_pattern(mod.weight, m)]
    left = [f"{name} (rows of {mod.weight[0].numel()})" for name, mod in targets if not fits_pattern(mod.weight, m)]
    if not fit:
        raise ConfigError(f"no layer's rows split into groups of {m}: {', '.join(left)}; an {n}:{m} "
                          f"pattern needs rows whose length is a multiple of {m}")
    if left:
        warnings.warn(f"{n}:{m} pattern: left whole, rows not a multiple of {m}: {', '.join(left)}", stacklevel=3)
    return fit
