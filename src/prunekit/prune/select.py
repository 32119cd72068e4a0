"""Selection: scores + sparsity (+ previous mask) -> keep mask. Pure functions.

Rules shared by every pruning method:

* ``sparsity`` is a percentage in ``[0, 100)``; the number pruned is
  ``round(sparsity / 100 * n)`` with Python's ``round`` (as in
  ``torch.nn.utils.prune._compute_nparams_toprune``).
* The lowest scores are pruned; ties are broken by flat index (stable sort on
  ``(score, index)``), so the same input always gives the same mask.
* Masks only shrink: entries already pruned in ``previous`` rank first (score ``-inf``)
  and count toward the target. If the target is below the current sparsity the previous
  mask is returned unchanged (nothing regrows).

The same functions serve weight-level selection (scores shaped like the weight) and
unit-level selection (1-D scores, one per unit).
"""

from __future__ import annotations

import fnmatch
import math
import numbers
from typing import Mapping, Optional

import torch

from prunekit.errors import ConfigError


def check_sparsity(sparsity: object) -> float:
    """Validate a sparsity percentage.

    Args:
        sparsity: the percentage of entries to prune, a real number in ``[0, 100)``.

    Returns:
        ``sparsity`` as a float.

    Raises:
        ConfigError: for a non-number, NaN, a negative value or a value >= 100.

    Example:
        >>> check_sparsity(92.5)
        92.5
    """
    ok = isinstance(sparsity, numbers.Real) and not isinstance(sparsity, bool)
    if ok:
        value = float(sparsity)
        ok = not math.isnan(value) and 0.0 <= value < 100.0
    if not ok:
        raise ConfigError(
            f"sparsity must be a percentage in [0, 100) (e.g. 92.5 for 92.5%), got {sparsity!r}"
        )
    return value


def check_layer_sparsities(sparsity: object) -> float | dict[str, float]:
    """Validate one sparsity for every layer, or a ``{fnmatch pattern: percent}`` plan per layer.

    Raises:
        ConfigError: for an empty plan, a pattern that is not a string, or an impossible percentage
            (naming the pattern).

    Example:
        >>> check_layer_sparsities({"features.*": 50, "fc1": 90.0})
        {'features.*': 50.0, 'fc1': 90.0}
    """
    if not isinstance(sparsity, Mapping):
        return check_sparsity(sparsity)
    if not sparsity:
        raise ConfigError("a per-layer sparsity plan needs at least one {layer pattern: percent} entry")
    plan = {}
    for pattern, value in sparsity.items():
        if not isinstance(pattern, str):
            raise ConfigError(f"per-layer sparsity keys are layer name patterns (strings), got {pattern!r}")
        try:
            plan[pattern] = check_sparsity(value)
        except ConfigError:
            raise ConfigError(f"sparsity for layers {pattern!r} must be a percentage in [0, 100), got {value!r}") from None
    return plan


def sparsity_of(sparsity: float | Mapping[str, float], layer: str) -> float:
    """The sparsity a layer gets: the number itself, or the first pattern of a plan that matches the
    layer's name (a layer no pattern matches: 0, left whole).

    Example:
        >>> sparsity_of({"fc1": 90.0, "fc*": 50.0}, "fc2"), sparsity_of({"fc1": 90.0}, "conv1"), sparsity_of(75.0, "x")
        (50.0, 0.0, 75.0)
    """
    if not isinstance(sparsity, Mapping):
        return sparsity
    return next((k for pattern, k in sparsity.items() if fnmatch.fnmatchcase(layer, pattern)), 0.0)


def check_plan_matches(sparsity: float | Mapping[str, float], layers: list[str]) -> None:
    """Every pattern of a plan must name at least one prunable layer.

    Raises:
        ConfigError: naming the pattern and the layers it could have named.
    """
    if not isinstance(sparsity, Mapping):
        return
    for pattern in sparsity:
        if not any(fnmatch.fnmatchcase(layer, pattern) for layer in layers):
            known = ", ".join(dict.fromkeys(layers)) or "(none)"
            raise ConfigError(f"per-layer sparsity pattern {pattern!r} matches no prunable layer; layers: {known}")


def check_finite_scores(scores: Mapping[str, torch.Tensor],
                        previous: Optional[Mapping[str, torch.Tensor]] = None) -> None:
    """Refuse NaN or infinite scores: they cannot be ranked (a NaN layer would silently stay whole).
    Entries already pruned in ``previous`` (``{name: bool keep mask}``) are not looked at.

    Raises:
        ConfigError: naming every tensor with such scores.

    Example:
        >>> check_finite_scores({"fc1.weight": torch.tensor([1.0, float("nan")]), "fc2.weight": torch.ones(2)})
        Traceback (most recent call last):
        ...
        prunekit.errors.ConfigError: cannot rank NaN or infinite pruning scores in 'fc1.weight' (1 of 2 entries); are these weights NaN or infinite (a diverged training run)?
    """
    bad = []
    for name, s in scores.items():
        non_finite = ~torch.isfinite(s.detach())
        keep = (previous or {}).get(name)
        if keep is not None and keep.shape == s.shape:
            non_finite &= keep.to(s.device)
        if non_finite.any():
            bad.append(f"{name!r} ({int(non_finite.sum()):,} of {s.numel():,} entries)")
    if bad:
        raise ConfigError(f"cannot rank NaN or infinite pruning scores in {', '.join(bad)}; are these weights "
                          f"NaN or infinite (a diverged training run)?")


def num_to_prune(sparsity: float, n: int) -> int:
    """Number of entries to prune out of ``n``: ``round(sparsity / 100 * n)``.

    Example:
        >>> num_to_prune(92.5, 10)
        9
    """
    return round(check_sparsity(sparsity) / 100 * n)


def keep_mask(
    scores: torch.Tensor, sparsity: float, previous: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Keep mask that prunes the lowest-scoring ``round(sparsity/100 * n)`` entries.

    Args:
        scores: importance scores of any shape (higher = more important).
        sparsity: target percentage of pruned entries, in ``[0, 100)``, counting the
            entries already pruned in ``previous``.
        previous: optional bool keep mask of the same shape (``True`` = kept); its pruned
            entries stay pruned.

    Returns:
        A bool tensor shaped like ``scores``; ``True`` = keep.

    Example:
        >>> keep_mask(torch.tensor([3.0, 1.0, 2.0, 4.0]), 50.0)
        tensor([ True, False, False,  True])
    """
    return keep_mask_of_count(scores, num_to_prune(sparsity, scores.numel()), previous)


def keep_mask_of_count(
    scores: torch.Tensor, n_prune: int, previous: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """:func:`keep_mask` with the number of entries to prune given: the ``n_prune`` lowest go (entries
    pruned in ``previous`` first; if they are more, exactly they stay pruned).

    Example:
        >>> keep_mask_of_count(torch.tensor([3.0, 1.0, 2.0]), 1)
        tensor([ True, False,  True])
    """
    if previous is not None:
        _check_previous(scores, previous)
        if n_prune <= int((~previous).sum()):
            return previous.clone()
    ranked = scores.detach().reshape(-1)
    if not ranked.is_floating_point():
        ranked = ranked.to(torch.float64)
    if previous is not None:
        ranked = ranked.masked_fill(~previous.reshape(-1).to(ranked.device), -math.inf)
    return _prune_lowest(ranked, n_prune).reshape(scores.shape)


def _prune_lowest(ranked: torch.Tensor, n_prune: int) -> torch.Tensor:
    """Keep mask pruning the ``n_prune`` lowest entries of the 1-D ``ranked``, ties by index.

    Same result as a stable sort on ``(score, index)``, in linear time: everything below the
    ``n_prune``-th smallest value goes, then the lowest-index entries equal to it.
    """
    keep = torch.ones(ranked.numel(), dtype=torch.bool, device=ranked.device)
    if n_prune == 0:
        return keep
    threshold = torch.kthvalue(ranked.cpu(), n_prune).values.to(ranked.device)
    below = ranked < threshold
    keep[below] = False
    ties = torch.nonzero(ranked == threshold).flatten()
    keep[ties[: n_prune - int(below.sum())]] = False
    return keep


def global_keep_masks(
    scores: Mapping[str, torch.Tensor],
    sparsity: float,
    previous: Optional[Mapping[str, torch.Tensor]] = None,
) -> dict[str, torch.Tensor]:
    """One ranking over several tensors: flatten, select, slice back.

    Args:
        scores: ``{name: scores}``; tensors may differ in shape and size.
        sparsity: target percentage of pruned entries over all tensors together.
        previous: optional ``{name: bool keep mask}``; a missing name means all kept.

    Returns:
        ``{name: bool keep mask}`` with the same keys and shapes as ``scores``.

    Example:
        >>> masks = global_keep_masks({"a": torch.tensor([1.0, 5.0]), "b": torch.tensor([2.0, 6.0])}, 50.0)
        >>> masks["a"], masks["b"]
        (tensor([False,  True]), tensor([False,  True]))
    """
    if not scores:
        raise ConfigError("global selection needs at least one score tensor, got none")
    names = list(scores)
    device = scores[names[0]].device
    flat = torch.cat([scores[n].detach().to(device, torch.float64).reshape(-1) for n in names])
    prev_flat = None
    if previous is not None:
        parts = []
        for n in names:
            p = previous.get(n)
            if p is None:
                p = torch.ones(scores[n].shape, dtype=torch.bool, device=device)
            _check_previous(scores[n], p, n)
            parts.append(p.to(device).reshape(-1))
        prev_flat = torch.cat(parts)
    keep = keep_mask(flat, sparsity, prev_flat)
    out, start = {}, 0
    for n in names:
        size = scores[n].numel()
        out[n] = keep[start : start + size].reshape(scores[n].shape).to(scores[n].device)
        start += size
    return out


def _check_previous(scores: torch.Tensor, previous: torch.Tensor, name: str = "scores") -> None:
    if previous.dtype != torch.bool or previous.shape != scores.shape:
        raise ConfigError(
            f"previous mask for {name} must be a bool tensor of shape {tuple(scores.shape)}, "
            f"got {previous.dtype} of shape {tuple(previous.shape)}"
        )
