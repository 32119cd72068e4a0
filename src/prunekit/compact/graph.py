"""Compaction of any traced model: remove the pruned units of every coupled group (channels,
neurons, heads) from all the tensors they own, as one plan, then check the result.

A unit is removed when every parameter entry it owns is zero (masked, or zero in the weights):
then it contributes nothing anywhere and removing it changes no output. The model is compacted
on a copy; the original is never modified, and a copy that does not reproduce the masked
model's outputs is an error, not a result.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from prunekit.prune import Pruner, PruneSpec
    >>> model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    >>> pruner = Pruner(model, PruneSpec("unit"), example_inputs=torch.randn(2, 3, 8, 8))
    >>> mask = pruner.prune(50.0)
    >>> result = compact_graph(model.eval(), mask, pruner.structure)  # the pruner's trace, reused
    >>> result.model[0].out_channels, result.model[4].in_features
    (4, 144)
"""

from __future__ import annotations

import copy
from typing import Any, Mapping, Optional

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..prune.mask import as_mask
from ..structure import ModelStructure, Structure
from ..batches import as_args
from .plan import Plan, TensorPlan, apply_plan
from .report import CompactionReport, LayerCompaction
from .result import CompactResult


def removable_units(structure: Structure, model: nn.Module, mask: Optional[Mapping[str, torch.Tensor]],
                    include_inexact: bool = False) -> dict[int, np.ndarray]:
    """``{group index: units to remove}``: units whose parameter entries are all zero (never all of a group)."""
    params = dict(model.named_parameters())
    mask = as_mask(mask)
    out = {}
    for index, group in enumerate(structure.groups):
        if not group.compactable or (not group.exact and not include_inexact):
            continue
        live = np.zeros(group.size, dtype=bool)
        for m in group.parameters:
            w = params[m.name].detach()
            nonzero = w != 0
            if mask is not None and m.name in mask:
                nonzero &= mask[m.name].to(w.device)
            per_position = nonzero.movedim(m.axis, 0).reshape(w.shape[m.axis], -1).any(1).cpu().numpy()
            np.logical_or.at(live, m.units[m.units >= 0], per_position[m.units >= 0])
        dead = np.nonzero(~live)[0]
        if len(dead) == group.size:
            dead = dead[1:]  # keep one (zero) unit: a layer of width 0 is not a layer
        if len(dead):
            out[index] = dead
    return out


def build_plan(structure: Structure, model: nn.Module, removed: Mapping[int, np.ndarray]) -> Plan:
    """The plan that removes ``removed`` units (see :func:`removable_units`) from every tensor they own."""
    named = dict(model.named_parameters(remove_duplicate=False))
    named.update(dict(model.named_buffers(remove_duplicate=False)))
    keep: dict[tuple[tuple[str, ...], int], np.ndarray] = {}
    for index, units in removed.items():
        for m in structure.groups[index].members:
            key = (m.names, m.axis)
            current = keep.get(key, np.ones(len(m.units), dtype=bool))
            keep[key] = current & ~np.isin(m.units, units)
    tensors: dict[str, TensorPlan] = {}
    for (names, axis), kept in keep.items():
        for name in names:
            old = tensors.get(name) or TensorPlan(tuple(named[name].shape), {})
            tensors[name] = TensorPlan(old.shape, {**old.keep, axis: np.nonzero(kept)[0].tolist()})
    summary = [{"name": g.name, "kind": g.kind, "units": g.size,
                "kept": int(g.size - len(removed.get(i, ())))} for i, g in enumerate(structure.groups)]
    return Plan(tensors, _attributes(structure, model, removed), f"{type(model).__module__}.{type(model).__qualname__}",
                summary)


def _attributes(structure: Structure, model: nn.Module, removed: Mapping[int, np.ndarray]) -> dict:
    """New values of the module attributes that size the changed axes (see :mod:`prunekit.structure.constants`)."""
    table = structure.table
    atoms = {table.find(structure.groups[i].atom): set(units.tolist()) for i, units in removed.items()}
    updates: dict[str, dict[str, Any]] = {}
    for site in structure.literals:
        if site.attribute in (None, "ambiguous"):
            continue
        new = _new_size(table, site.space, atoms)
        if new == site.value:
            continue
        path, _, attr = site.attribute.partition(":")
        previous = updates.setdefault(path, {}).setdefault(attr, new)
        if previous != new:
            raise ConfigError(f"{path}.{attr} would have to be both {previous} and {new} after compaction")
    return updates


def _new_size(table, space: int, atoms: dict[int, set]) -> int:
    n = table.size(space)
    dropped = np.zeros(n, dtype=bool)
    for atom in set(table.atoms_of(space)):
        units = atoms.get(table.find(atom))
        if units:
            dropped |= np.isin(table.coordinates(space, atom), list(units))
    return int(n - dropped.sum())


def compact_graph(model: nn.Module, mask: Optional[Mapping[str, torch.Tensor]], structure: ModelStructure, *,
                  include_inexact: bool = False, check: bool = True, atol: float = 1e-5):
    """Compact any traced model (see the module docstring). Returns a :class:`CompactResult`.

    The compacted model must reproduce the masked one within ``atol`` (relative to the output scale) on
    the structure's example inputs; when groups that are not exact are removed (``include_inexact``) the difference
    is only measured and reported in :attr:`CompactResult.difference`."""
    example_inputs = structure.example_inputs
    structure = structure.graph  # traced once per ModelStructure (a Pruner's, when it traced)
    masked = copy.deepcopy(model).eval()
    if mask is not None:
        as_mask(mask).apply_(masked)
    removed = removable_units(structure, masked, None, include_inexact)
    plan = build_plan(structure, masked, removed)
    small = apply_plan(copy.deepcopy(masked), plan).eval()
    inexact = any(not structure.groups[i].exact for i in removed)
    difference = check_outputs(masked, small, example_inputs, atol=float("inf") if inexact or not check else atol)
    before = sum(p.numel() for p in masked.parameters())
    after = sum(p.numel() for p in small.parameters())
    rows = tuple(LayerCompaction(g["name"], g["kind"], g["units"], g["kept"], 0,
                                 "compacted" if g["kept"] < g["units"] else "unchanged")
                 for g in plan.groups) + tuple(_skipped(structure, include_inexact))
    kept = {structure.groups[i].name: torch.tensor(sorted(set(range(structure.groups[i].size)) - set(u.tolist())))
            for i, u in removed.items()}
    return CompactResult(small, CompactionReport(rows, before, after), kept, plan, structure, difference)


def _skipped(structure: Structure, include_inexact: bool):
    for g in structure.groups:
        if not g.compactable or (not g.exact and not include_inexact):
            yield LayerCompaction(g.name, g.kind, g.size, g.size, 0, "skipped",
                                  g.note or "not exact (use include_inexact)")


def outputs(model: nn.Module, example_inputs: Any) -> list[torch.Tensor]:
    """The float tensors a model returns (a tensor, a tuple, or a Hugging Face output object)."""
    args, kwargs = as_args(example_inputs)
    with torch.no_grad():
        out = model(*args, **kwargs)
    found = []

    def collect(value):
        if isinstance(value, torch.Tensor):
            if value.is_floating_point():
                found.append(value)
        elif isinstance(value, Mapping):
            for v in value.values():
                collect(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                collect(v)

    collect(out if not hasattr(out, "to_tuple") else out.to_tuple())
    return found


def check_outputs(reference: nn.Module, candidate: nn.Module, example_inputs: Any, atol: float = 1e-5) -> float:
    """Largest output difference relative to the output scale; raises ConfigError above ``atol``."""
    want, got = outputs(reference, example_inputs), outputs(candidate, example_inputs)
    if len(want) != len(got) or any(a.shape != b.shape for a, b in zip(want, got)):
        raise ConfigError(f"the compacted model returns {[tuple(t.shape) for t in got]} where the pruned model "
                          f"returns {[tuple(t.shape) for t in want]}")
    worst = 0.0
    for a, b in zip(want, got):
        scale = max(1.0, float(a.abs().max()))
        worst = max(worst, float((a - b).abs().max()) / scale)
    if worst > atol:
        raise ConfigError(f"the compacted model's outputs differ from the pruned model's by {worst:.3g} (relative), "
                          f"more than {atol:g}: a constant of the model's code did not follow the new sizes")
    return worst
