"""Pruning methods: a registry (:data:`METHODS`) of entries that declare what they remove and build
keep masks from scores, and the pruning scopes.

A method that ``removes_units`` prunes whole output neurons / filters (and, on a traced model, every
coupled group); one that does not prunes individual weights, and only such a method takes N:M
patterns, the post-training criteria (``wanda``, ``sparsegpt``) and ``reconstruct``. Register your own:

Example:
    >>> import torch
    >>> from torch import nn
    >>> def every_other(model, targets, sparsity, scope, criterion, previous):
    ...     keep = {}
    ...     for layer, _ in targets:
    ...         w = dict(model.named_parameters())[f"{layer}.weight"]
    ...         keep[f"{layer}.weight"] = torch.arange(w.numel()).reshape(w.shape) % 2 == 0
    ...     return keep
    >>> _ = METHODS.register("every_other", PruningMethod("every_other", "magnitude", every_other))
    >>> from prunekit.prune import prune_model
    >>> mask = prune_model(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)), "every_other", 50.0)
    >>> round(mask.sparsity(), 1), sorted(mask)  # the output layer stays whole
    (50.0, ['0.weight'])
    >>> _ = METHODS.unregister("every_other")
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from prunekit.errors import ConfigError
from prunekit.prune.nm import nm_keep_mask
from prunekit.prune.scores import Criterion
from prunekit.prune.select import check_finite_scores, check_plan_matches, global_keep_masks, keep_mask, sparsity_of
from prunekit.prune.layers import param_name, unit_groups
from prunekit.prune.unit_criteria import CriterionRun
from prunekit.prune.units import views_of_unit_groups
from prunekit.registry import Registry

SCOPES: dict[str, str] = {
    "layer": "the same sparsity in every pruned tensor (or every layer's units)",
    "global": "one ranking over all pruned tensors (or all units) together",
}


@dataclass(frozen=True)
class PruningMethod:
    """A pruning method: what it removes and how it turns scores into keep masks.

    Attributes:
        name: its registry name.
        default_criterion: the criterion used when none is given.
        build: ``build(model, targets, sparsity, scope, criterion, previous) -> {name: keep mask}``:
            ``targets`` the ``(layer, module)`` pairs to prune, ``previous`` the keep masks so far.
        removes_units: whether it removes whole units (output neurons, filters, coupled groups of a
            traced model) rather than single weights.
    """

    name: str
    default_criterion: str
    build: Callable[..., dict[str, torch.Tensor]]
    removes_units: bool = False


def weight_masks(model, targets, sparsity, scope, fn, previous, pattern=None) -> dict[str, torch.Tensor]:
    params = dict(model.named_parameters())
    scores, prev = {}, {}
    names = [param_name(layer, "weight") for layer, _ in targets]
    precomputed = fn.weight_scores(model, names) if isinstance(fn, CriterionRun) else None
    for name in names:
        if precomputed is not None:
            s, w = precomputed[name], params[name].detach()
        else:
            s, w = _score(fn, params[name], previous.get(name))
        if s.shape != w.shape:
            raise ConfigError(
                f"criterion gave scores of shape {tuple(s.shape)} for {name!r} of shape "
                f"{tuple(w.shape)}; method='weight' needs one score per weight (use method='unit')"
            )
        scores[name] = s
        if name in previous:
            prev[name] = previous[name]
    check_finite_scores(scores, prev)
    layer_of = {param_name(layer, "weight"): layer for layer, _ in targets}
    if pattern is not None:
        return {n: nm_keep_mask(s, *pattern, prev.get(n)) for n, s in scores.items()}
    return _select(scores, sparsity, scope, prev, layer_of)


def unit_masks(model, targets, sparsity, scope, fn, previous) -> dict[str, torch.Tensor]:
    params = dict(model.named_parameters())
    groups = unit_groups(model, targets)
    scores, prev = {}, {}
    by_unit = fn.unit_scores(model, views_of_unit_groups(model, groups)) if isinstance(fn, CriterionRun) else None
    for i, g in enumerate(groups):
        if by_unit is not None:
            scores[g.layer] = by_unit[i]
        else:
            s, w = _score(fn, params[g.weight], previous.get(g.weight))
            scores[g.layer] = _unit_scores(s, w, g.weight)
        if g.weight in previous:  # a unit is already pruned if its whole row/filter is
            prev[g.layer] = previous[g.weight].reshape(g.num_units, -1).any(dim=1)
    check_finite_scores(scores, prev)
    keep = _select(scores, sparsity, scope, prev, {g.layer: g.layer for g in groups})
    out: dict[str, torch.Tensor] = {}
    for g in groups:
        out.update(g.expand(keep[g.layer]))
    return out


def _select(scores, sparsity, scope, prev, layer_of) -> dict[str, torch.Tensor]:
    if scope == "global":
        return global_keep_masks(scores, sparsity, prev)
    check_plan_matches(sparsity, list(layer_of.values()))
    return {n: keep_mask(s, sparsity_of(sparsity, layer_of[n]), prev.get(n)) for n, s in scores.items()}


def _score(fn: Criterion, param: torch.Tensor, prev: Optional[torch.Tensor]):
    """Scores of ``param`` with already-pruned entries (and their gradients) zeroed."""
    w, grad = param.detach(), param.grad
    if prev is not None:
        w = w.masked_fill(~prev.to(w.device), 0)
        grad = None if grad is None else grad.masked_fill(~prev.to(grad.device), 0)
    scores = fn(w, grad=grad) if _takes_grad(fn) else fn(w)
    if not isinstance(scores, torch.Tensor):
        raise ConfigError(f"criterion must return a tensor, got {type(scores).__name__}")
    return scores.detach(), w


def _unit_scores(s: torch.Tensor, w: torch.Tensor, name: str) -> torch.Tensor:
    if s.shape == w.shape:
        return s.reshape(w.shape[0], -1).norm(p=2, dim=1)
    if s.shape == (w.shape[0],):
        return s
    raise ConfigError(
        f"criterion gave scores of shape {tuple(s.shape)} for {name!r} of shape {tuple(w.shape)}; "
        f"method='unit' needs one score per weight or one per unit ({w.shape[0]})"
    )


def _takes_grad(fn) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "grad" or p.kind is p.VAR_KEYWORD for p in params)



def removes_units(method: str) -> bool:
    """Whether the registered ``method`` removes whole units (rather than single weights).

    Example:
        >>> removes_units("unit"), removes_units("weight")
        (True, False)
    """
    return METHODS.get(method).removes_units


METHODS: Registry[PruningMethod] = Registry("pruning method")
"""Registered pruning methods by name."""
METHODS.register("weight", PruningMethod("weight", "magnitude", weight_masks),
                 description="individual weights, lowest score first (default criterion: magnitude)")
METHODS.register("unit", PruningMethod("unit", "unit_l2", unit_masks, removes_units=True),
                 description="whole output neurons / conv filters (default criterion: unit_l2)")
