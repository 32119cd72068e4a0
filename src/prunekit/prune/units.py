"""The parameter slices each unit owns, as criteria of whole units see them.

A unit (a neuron, a conv filter, a channel coupled across layers, an attention head) owns slices of
several tensors: its filter in the producing layer(s), its bias and normalisation entries, and the
matching input slices of the layers that read it. :class:`UnitView` gathers those slices into one row
per unit, whether the units come from the layer-by-layer walk of an ``nn.Sequential``
(:func:`views_of_unit_groups`) or from the coupled groups of a traced model (:func:`views_of_groups`).

Example:
    >>> import torch
    >>> from torch import nn
    >>> from prunekit.prune.layers import select_layers, unit_groups
    >>> model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 3))
    >>> view = views_of_unit_groups(model, unit_groups(model, select_layers(model, "unit")))[0]
    >>> view.size, view.rows(dict(model.named_parameters()), roles=("filter",)).shape
    (4, torch.Size([4, 9]))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError

ROLES = ("filter", "norm_scale", "other")
"""``filter``: a unit's output slice of a Linear/Conv weight; ``norm_scale``: its normalisation weight
(BatchNorm/GroupNorm/LayerNorm gamma); ``other``: biases, norm shifts and the readers' input slices."""


@dataclass(frozen=True, eq=False)
class UnitSlice:
    """One tensor's slices: ``units[i]`` is the unit owning index ``i`` along ``axis`` (-1: none)."""

    name: str
    axis: int
    units: np.ndarray
    role: str


@dataclass(eq=False)
class UnitView:
    """A group of ``size`` units and the parameter slices they own."""

    name: str
    size: int
    slices: list[UnitSlice]

    def rows(self, tensors: Mapping[str, torch.Tensor], roles: Sequence[str] = ROLES) -> torch.Tensor:
        """``[size, features]`` (float64): every unit's entries of the slices of the given roles, side by side.

        ``tensors`` maps parameter names to tensors (the parameters, or their gradients); a
        missing gradient counts as zeros. Zero columns for a role no slice has.
        """
        parts = []
        for s in self.slices:
            if s.role not in roles:
                continue
            value = tensors.get(s.name)
            if value is None:
                continue
            parts.append(_unit_rows(value.detach(), s, self.size))
        if not parts:
            return torch.zeros(self.size, 0, dtype=torch.float64)
        return torch.cat(parts, dim=1)

    def has(self, role: str) -> bool:
        return any(s.role == role for s in self.slices)


def _unit_rows(value: torch.Tensor, s: UnitSlice, size: int) -> torch.Tensor:
    flat = value.to(torch.float64).cpu().movedim(s.axis, 0).reshape(value.shape[s.axis], -1)
    owned = np.nonzero(s.units >= 0)[0]
    order = owned[np.argsort(s.units[owned], kind="stable")]
    counts = np.bincount(s.units[owned], minlength=size)
    if counts.min() != counts.max():
        raise ConfigError(f"{s.name}: its units own unequal numbers of slices along axis {s.axis}; "
                          f"this criterion needs equal ones")
    return flat[torch.from_numpy(order)].reshape(size, -1)


def views_of_unit_groups(model: nn.Module, groups) -> list[UnitView]:
    """Views of the layer-by-layer unit groups of :func:`~prunekit.prune.layers.unit_groups`."""
    modules = dict(model.named_modules())
    views = []
    for g in groups:
        units = np.arange(g.num_units)
        slices = [UnitSlice(g.weight, 0, units, "filter")]
        slices += [UnitSlice(name, 0, units, _role(modules, name, 0)) for name in g.extras]
        views.append(UnitView(g.layer, g.num_units, slices))
    return views


def views_of_groups(model: nn.Module, groups) -> list[UnitView]:
    """Views of the coupled groups of a traced model (:mod:`prunekit.structure`)."""
    modules = dict(model.named_modules())
    return [UnitView(g.name, g.size, [UnitSlice(m.name, m.axis, m.units, _role(modules, m.name, m.axis))
                                      for m in g.parameters]) for g in groups]


def _role(modules: Mapping[str, nn.Module], name: str, axis: int) -> str:
    owner, _, attr = name.rpartition(".")
    module = modules.get(owner)
    if attr != "weight" or module is None:
        return "other"
    if isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)):
        return "norm_scale"
    if module.weight.dim() >= 2 and axis == output_axis(module):
        return "filter"
    return "other"


def output_axis(module: nn.Module) -> int:
    """The axis of a weight that indexes the layer's outputs: 1 for transposed convolutions and GPT-2 style
    ``Conv1D`` (weights stored ``[in, out]``, recognised by an ``nf`` output size), else 0."""
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return 1
    if getattr(module, "nf", None) == module.weight.shape[-1] and module.weight.dim() == 2:
        return 1
    return 0
