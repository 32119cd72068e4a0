"""Unit pruning of any traced model: rank the units of every coupled group (channels, neurons,
attention heads) and mask all the tensor slices each pruned unit owns. Every group keeps at least
its best unit (a layer of width 0 would cut the network).

Example:
    >>> import torch
    >>> from torch import nn
    >>> from prunekit import prune_model
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> mask = prune_model(model, "unit", 50.0, example_inputs=torch.randn(2, 4))
    >>> int((~mask["0.weight"].any(1)).sum()), int((~mask["2.weight"].any(0)).sum())  # rows and columns
    (4, 4)
"""

from __future__ import annotations

import fnmatch
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..structure import Group, Structure, trace
from .mask import Mask
from .select import check_finite_scores, check_plan_matches, global_keep_masks, keep_mask, sparsity_of
from .unit_criteria import CriterionRun
from .units import views_of_groups


def prunable_groups(structure: Structure, layers: Optional[Sequence[str]] = None,
                    include_inexact: bool = False) -> list[Group]:
    """The groups unit pruning ranks: exact and compactable (inexact too on request), chosen by
    ``fnmatch`` patterns on their names.

    Raises:
        ConfigError: if a pattern matches no group, or nothing is left to prune.
    """
    groups = [g for g in structure.groups if g.compactable and (g.exact or include_inexact)]
    if layers is not None:
        patterns = [layers] if isinstance(layers, str) else list(layers)
        chosen = []
        for pattern in patterns:
            hits = [g for g in groups if fnmatch.fnmatch(g.name, pattern)]
            if not hits:
                names = ", ".join(dict.fromkeys(g.name for g in groups)) or "(none)"
                raise ConfigError(f"layer pattern {pattern!r} matches no prunable group; groups: {names}")
            chosen += [g for g in hits if g not in chosen]
        groups = chosen
    if not groups:
        skipped = [g.describe() for g in structure.groups][:5]
        raise ConfigError("nothing to prune by units: no coupled group is exact and compactable"
                          + (f" ({'; '.join(skipped)})" if skipped else "; every axis reaches an input or output"))
    return groups


def group_unit_masks(model: nn.Module, structure: Structure | Any, sparsity: float, scope: str, score,
                     previous: Mask, layers=None, include_inexact: bool = False) -> dict[str, torch.Tensor]:
    """Keep masks of every parameter slice of the pruned units (see the module docstring).

    ``structure``: the model's traced :class:`~prunekit.structure.Structure` (or example inputs to trace it on).
    """
    if not isinstance(structure, Structure):
        structure = trace(model, structure)
    groups = prunable_groups(structure, layers, include_inexact)
    scores, prev = {}, {}
    by_unit = score.unit_scores(model, views_of_groups(model, groups)) if isinstance(score, CriterionRun) else None
    for i, group in enumerate(groups):
        scores[i] = by_unit[i].clone() if by_unit is not None else group.unit_norms(model, score)
        pruned = _pruned_units(group, previous)
        if pruned.any():
            prev[i] = torch.from_numpy(~pruned)
    check_finite_scores({groups[i].name: s for i, s in scores.items()}, {groups[i].name: p for i, p in prev.items()})
    for i, s in scores.items():
        alive = np.nonzero(prev[i].numpy())[0] if i in prev else np.arange(len(s))
        if len(alive):  # every group keeps its best unit: a layer of width 0 is not a layer
            best = alive[int(torch.argmax(s[torch.from_numpy(alive)]))]
            s[best] = float("inf")
    if scope == "global":
        keep = global_keep_masks(scores, sparsity, prev)
    else:
        check_plan_matches(sparsity, [g.name for g in groups])
        keep = {i: keep_mask(s, sparsity_of(sparsity, groups[i].name), prev.get(i)) for i, s in scores.items()}
    params = dict(model.named_parameters())
    out: dict[str, torch.Tensor] = {}
    for i, group in enumerate(groups):
        dropped = np.nonzero(~keep[i].numpy())[0]
        for m in group.parameters:
            current = out.get(m.name, torch.ones(params[m.name].shape, dtype=torch.bool))
            positions = torch.from_numpy(m.positions(dropped))
            current.index_fill_(m.axis, positions, False)
            out[m.name] = current
    return out


def _pruned_units(group: Group, previous: Mask) -> np.ndarray:
    """Units whose every parameter entry the previous mask already prunes."""
    alive = np.zeros(group.size, dtype=bool)
    seen = False
    for m in group.parameters:
        if m.name not in previous:
            alive[:] = True
            break
        seen = True
        keep = previous[m.name]
        per_position = keep.movedim(m.axis, 0).reshape(keep.shape[m.axis], -1).any(1).numpy()
        valid = m.units >= 0
        np.logical_or.at(alive, m.units[valid], per_position[valid])
    return ~alive if seen else np.zeros(group.size, dtype=bool)
