"""``prune_model``: score, select, build a :class:`Mask`, apply it in place.

Pruning methods are a registry (:data:`METHODS`) of :class:`PruningMethod` entries, each
building keep masks from scores; scopes are ``layer`` and ``global``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from prunekit.errors import ConfigError
from prunekit.prune.mask import Mask, as_mask
from prunekit.prune.nm import Pattern, layers_fitting, nm_keep_mask, parse_pattern, sparsity_with_pattern
from prunekit.prune.posttrain import PostTrainingCriterion, posttrain_masks, reconstruct_masked
from prunekit.prune.scores import Criterion, get_criterion
from prunekit.prune.select import (check_finite_scores, check_layer_sparsities, check_plan_matches, global_keep_masks,
                                   keep_mask, sparsity_of)
from prunekit.prune.targets import param_name, select_layers, unit_groups
from prunekit.prune.unit_criteria import CriterionRun, UnitCriterion
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
        build: ``build(model, targets, sparsity, scope, criterion, previous) -> {name: keep mask}``.
    """

    name: str
    default_criterion: str
    build: Callable[..., dict[str, torch.Tensor]]


def prune_model(
    model: nn.Module,
    method: str = "weight",
    sparsity: Union[float, Mapping[str, float], None] = None,
    *,
    scope: str = "layer",
    layers: Optional[Sequence[str]] = None,
    criterion: Union[str, Criterion, None] = None,
    mask: Optional[Mapping[str, torch.Tensor]] = None,
    include_output: bool = False,
    example_inputs: Any = None,
    include_inexact: bool = False,
    calibration: Any = None,
    calibration_batches: int = 32,
    loss_fn: Optional[Callable] = None,
    pattern: Union[str, tuple[int, int], None] = None,
    reconstruct: bool = False,
) -> Mask:
    """Prune ``model`` in place to a total ``sparsity`` percent and return the mask.

    ``round(sparsity / 100 * n)`` entries are pruned, where ``n`` counts the weights of each
    pruned tensor (``scope="layer"``), or of all of them (``scope="global"``); for
    ``method="unit"`` it counts units (output neurons / conv filters) instead of weights.
    A unit's row/filter, bias entry and following BatchNorm weight/bias entries are masked
    together (see :mod:`prunekit.prune.targets`). The output layer (classifier) is left whole
    by default for both methods; its units are never removed.
    Scores are computed on the currently masked weights. With ``mask`` (a previous mask),
    entries already pruned stay pruned and count toward the target, so an iterative schedule
    calls ``prune_model`` with an increasing total target each round; a target below the
    current sparsity leaves the mask as it is.

    Args:
        model: the model; its parameters are zeroed in place (objects unchanged).
        method: ``"weight"`` or ``"unit"`` (see :data:`METHODS`).
        sparsity: percentage to prune, in ``[0, 100)``; e.g. ``92.5`` (default: 50, or the pattern's). Or a plan per layer,
            ``{fnmatch pattern: percent}`` on module names (on group names with ``example_inputs``):
            the first matching pattern gives a layer its sparsity, a layer no pattern matches is left
            whole; layer scope only.
        scope: ``"layer"`` or ``"global"`` (see :data:`SCOPES`).
        layers: ``fnmatch`` patterns on module names selecting the layers to prune.
        criterion: a name in :data:`~prunekit.prune.scores.CRITERIA` (``magnitude``, ``unit_l2``,
            ``random``, the unit criteria ``l1``, ``l2``, ``bn_scale``, ``fpgm``, ``taylor`` of
            :mod:`~prunekit.prune.unit_criteria` and ``learned`` of :mod:`~prunekit.prune.learned`) or a callable ``fn(weight, grad=None) -> scores``
            (per weight, or per unit for ``"unit"``; per-weight scores are reduced to their L2
            norm per unit). With ``example_inputs`` a unit criterion scores each coupled group as one.
        mask: the previous mask; the result only shrinks it.
        include_output: weight pruning: prune the output layer's weights too.
        example_inputs: unit pruning of any model: one batch it accepts (tensor, tuple or dict).
            The model is traced (:mod:`prunekit.structure`) and every coupled group (channels joined
            by residual adds, concatenations, depthwise convs, attention heads...) is ranked by the
            L2 norm of all the weights its units own; the model's outputs are never pruned.
            Without it, unit pruning walks the layers in order (``nn.Sequential`` models).
        include_inexact: with ``example_inputs``: also prune groups mixed by a normalisation (a
            transformer's residual width through LayerNorm); removing them is then not exact.
        calibration: data for criteria that need it (``taylor``, ``learned``, ``wanda``, ``sparsegpt``): any
            form :func:`~prunekit.train` takes; ``calibration_batches`` batches of it (128 samples each for
            tensors) are used, with ``loss_fn`` (default: the model's own loss, else cross-entropy).
        pattern: weight pruning: an N:M pattern such as ``"2:4"`` (keep N of every M consecutive weights
            of a row, :mod:`~prunekit.prune.nm`) instead of a free sparsity; layers whose rows do not
            split into groups of M are left whole (with a warning).
        reconstruct: weight pruning: after the mask is chosen (by any criterion), re-solve each pruned layer's
            remaining weights, in call order, so its outputs on the ``calibration`` data match the unpruned
            layer's (exact damped least squares, :mod:`~prunekit.prune.reconstruct`). No training.

    Returns:
        The new :class:`Mask` (already applied to ``model``).

    Raises:
        ConfigError: for an invalid sparsity, method, scope, criterion or layer pattern, or NaN or
            infinite scores (naming the layers).
        CheckpointError: if ``mask`` does not fit ``model``.

    Example:
        >>> model = nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 10))
        >>> mask = prune_model(model, "weight", 90.0)
        >>> round(mask.sparsity(), 1)
        90.0
        >>> mask = prune_model(model, "weight", 95.0, scope="global", mask=mask)
    """
    pruning = METHODS.get(method)
    _check_choice("scope", scope, SCOPES)
    nm = parse_pattern(pattern)
    sparsity = check_layer_sparsities(sparsity_with_pattern(sparsity, nm))
    if isinstance(sparsity, dict) and scope == "global":
        raise ConfigError("a per-layer sparsity plan sets each layer's sparsity itself: use scope='layer'")
    _refuse_torch_pruned(model)
    fn = _resolve_criterion(criterion, pruning)
    if nm is not None or isinstance(fn, PostTrainingCriterion):
        _check_layerwise_weight(method, scope, fn, nm)
    if reconstruct and method != "weight":
        raise ConfigError("reconstruct=True re-solves the weights a weight mask keeps: use method='weight'")
    if isinstance(fn, UnitCriterion):
        fn = CriterionRun(fn, calibration, calibration_batches, loss_fn, sparsity)
    previous = as_mask(mask)
    if previous is not None:
        previous.validate(model)
        previous.apply_(model)
    if method == "unit" and example_inputs is not None:
        from .structured import group_unit_masks

        score = None if criterion in (None, "unit_l2", "magnitude") else fn
        new = Mask(group_unit_masks(model, example_inputs, sparsity, scope, score, previous or Mask({}),
                                    layers, include_inexact))
    elif isinstance(fn, PostTrainingCriterion):
        targets = layers_fitting(select_layers(model, method, layers, include_output=include_output), nm)
        new = Mask(posttrain_masks(model, targets, sparsity, fn, calibration, calibration_batches, previous or {}, nm,
                                   reconstruct))
        reconstruct = False  # done layer by layer with the masks
    elif nm is not None:
        targets = layers_fitting(select_layers(model, method, layers, include_output=include_output), nm)
        new = Mask(_weight_masks(model, targets, sparsity, scope, fn, previous or {}, nm))
    else:
        targets = select_layers(model, method, layers, include_output=include_output)
        new = Mask(pruning.build(model, targets, sparsity, scope, fn, previous or {}))
    result = new & previous if previous is not None else new
    if reconstruct:
        reconstruct_masked(model, targets, result, calibration, calibration_batches)
    result.apply_(model)
    return result


def _check_layerwise_weight(method: str, scope: str, fn, nm: Optional[Pattern]) -> None:
    what = "an N:M pattern" if nm is not None else f"criterion {fn.kind!r}"
    if method != "weight":
        raise ConfigError(f"{what} prunes individual weights: use method='weight'")
    if scope != "layer":
        raise ConfigError(f"{what} prunes each layer on its own: use scope='layer'")


def _weight_masks(model, targets, sparsity, scope, fn, previous, pattern=None) -> dict[str, torch.Tensor]:
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


def _unit_masks(model, targets, sparsity, scope, fn, previous) -> dict[str, torch.Tensor]:
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


def _refuse_torch_pruned(model: nn.Module) -> None:
    names = [n for n, _ in model.named_parameters() if n.endswith("_orig")]
    buffers = {n for n, _ in model.named_buffers()}
    pruned = [n.removesuffix("_orig") for n in names if n.removesuffix("_orig") + "_mask" in buffers]
    if pruned:
        raise ConfigError(f"the model is pruned with torch.nn.utils.prune ({', '.join(pruned[:3])}"
                          f"{', ...' if len(pruned) > 3 else ''}); convert it first: "
                          f"model, mask = prunekit.from_torch_prune(model), then prune_model(model, ..., mask=mask)")


def _resolve_criterion(criterion, pruning: PruningMethod) -> Criterion:
    if criterion is None:
        return get_criterion(pruning.default_criterion)
    if isinstance(criterion, str):
        fn = get_criterion(criterion)
        if pruning.name == "weight" and criterion == "unit_l2":
            raise ConfigError("criterion 'unit_l2' scores whole units; use it with method='unit'")
        return fn
    if callable(criterion):
        return criterion
    raise ConfigError(f"criterion must be a name or a callable, got {criterion!r}")


def _check_choice(what: str, value: object, valid: Mapping[str, str]) -> None:
    if not isinstance(value, str) or value not in valid:
        raise ConfigError(f"unknown pruning {what} {value!r}; valid: {', '.join(valid)}")


METHODS: Registry[PruningMethod] = Registry("pruning method")
"""Registered pruning methods by name."""
METHODS.register("weight", PruningMethod("weight", "magnitude", _weight_masks),
                 description="individual weights, lowest score first (default criterion: magnitude)")
METHODS.register("unit", PruningMethod("unit", "unit_l2", _unit_masks),
                 description="whole output neurons / conv filters (default criterion: unit_l2)")
