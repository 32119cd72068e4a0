"""Coupled channel groups read off a traced model: each prunable atom space is a group whose units
(channels, neurons, heads) each own a slice of several parameters and buffers.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from prunekit.structure import trace
    >>> model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 3),
    ...                       nn.Flatten(), nn.Linear(4 * 4 * 4, 10))
    >>> structure = trace(model, torch.randn(2, 1, 8, 8))
    >>> [(g.name, g.size, [m.name for m in g.members]) for g in structure.groups][0]
    ('0', 8, ['0.weight', '0.bias', '1.weight', '1.bias', '3.weight', '1.running_mean', '1.running_var'])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True, eq=False)
class Member:
    """A tensor slice that belongs to a group: ``units[i]`` is the unit of index ``i`` along ``axis`` (-1: none)."""

    name: str
    names: tuple[str, ...]
    axis: int
    units: np.ndarray
    parameter: bool

    def positions(self, unit_ids: np.ndarray) -> np.ndarray:
        """Indices along :attr:`axis` that belong to the given units."""
        return np.nonzero(np.isin(self.units, unit_ids))[0]


@dataclass
class Group:
    """Channels that must be removed together.

    Attributes:
        name: the module of its first parameter (e.g. ``layer1.0.conv1``).
        kind: ``"channels"``, or ``"heads"`` for attention heads.
        size: the number of units.
        members: every parameter and buffer slice of the units.
        exact: ``False`` when an op mixes the units (a LayerNorm or softmax over them): removing
            some changes the others, so pruning it is not exact.
        note: why it is not exact, or not compactable.
        compactable: ``False`` when a constant of the model's code sizes these units together with
            others (e.g. one ``head_dim`` for queries and values), so removing them alone cannot be
            expressed by changing attributes.
    """

    name: str
    kind: str
    size: int
    members: list[Member]
    exact: bool = True
    note: str = ""
    atom: int = field(default=-1, repr=False)
    compactable: bool = True

    @property
    def parameters(self) -> list[Member]:
        return [m for m in self.members if m.parameter]

    def unit_norms(self, model: nn.Module, score=None) -> torch.Tensor:
        """Per unit, the L2 norm over all its parameter slices (of ``score(w)``, default ``|w|``)."""
        params = dict(model.named_parameters())
        total = torch.zeros(self.size, dtype=torch.float64)
        for m in self.parameters:
            w = params[m.name].detach()
            values = (score(w) if score is not None else w).to(torch.float64).cpu()
            squares = values.pow(2).movedim(m.axis, 0).reshape(values.shape[m.axis], -1).sum(1)
            keep = m.units >= 0
            total.index_add_(0, torch.from_numpy(m.units[keep]), squares[torch.from_numpy(keep)])
        return total.sqrt()

    def describe(self) -> str:
        flag = "" if self.exact else f" (not exact: {self.note})"
        flag += "" if self.compactable else f" (not compactable: {self.note})"
        return f"{self.name} [{self.kind}]: {self.size} units over {len(self.members)} tensors{flag}"


def extract_groups(ctx, model: nn.Module) -> tuple[list[Group], dict[str, str]]:
    """Every prunable atom with at least one parameter slice, as a :class:`Group`; and, for the
    report, ``{tensor.axis: reason}`` of the axes that are frozen."""
    table = ctx.table
    params = {id(p) for p in model.parameters()}
    order = {id(t): i for i, (_, t) in enumerate([*model.named_parameters(), *model.named_buffers()])}
    members: dict[int, list[tuple[int, int]]] = {}
    frozen: dict[str, str] = {}
    for key in sorted(ctx.tensor_spaces, key=lambda k: order.get(k, 1 << 30)):
        for axis, space in enumerate(ctx.tensor_spaces[key]):
            for atom in dict.fromkeys(table.atoms_of(space)):
                if table.is_frozen(atom) or table.size(atom) < 2:
                    if table.size(atom) > 1:
                        frozen.setdefault(f"{ctx.tensor_names[key][0]}.{axis}", table.frozen.get(table.find(atom), ""))
                    continue
                members.setdefault(atom, []).append((key, axis))
    heads = {a for space in ctx.head_axes for a in table.atoms_of(space)}
    groups = []
    for atom, places in members.items():
        entries = [_member(ctx, key, axis, atom, key in params) for key, axis in places]
        if not any(e.parameter for e in entries):
            continue
        first = next(e for e in entries if e.parameter).name.rpartition(".")[0] or "(model)"
        exact = not table.is_mixed(atom)
        groups.append(Group(first, "heads" if atom in heads else "channels", table.size(atom), entries, exact,
                            "" if exact else table.mixed.get(table.find(atom), "mixed"), atom))
    return groups, frozen


def _member(ctx, key: int, axis: int, atom: int, parameter: bool) -> Member:
    names = tuple(ctx.tensor_names[key])
    units = ctx.table.coordinates(ctx.tensor_spaces[key][axis], atom)
    return Member(names[0], names, axis, units, parameter)
