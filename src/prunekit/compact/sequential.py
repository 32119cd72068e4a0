"""Compaction: physically remove dead units, giving a smaller dense model of standard layers.

:func:`compact` walks an ``nn.Sequential`` (nested ``nn.Sequential`` are flattened) in order.
For each ``nn.Linear`` / ``nn.Conv2d`` (the *producer*) it follows the modules up to the next
Linear/Conv2d (the *consumer*) and removes the producer's **dead** units: a Linear's output
rows or a Conv2d's filters, the matching channels of a BatchNorm in between, and the matching
inputs of the consumer (a conv's input channels, or a Linear's input columns; after an
``nn.Flatten`` each channel is a block of ``H*W`` columns).

A unit is **dead** when its output after the modules in between is exactly zero whatever the
input: its weights are all zero (on the still-live inputs, so removals cascade) and its bias,
passed through the BatchNorm and activations in between, is exactly zero. A zero channel stays
zero through the modules allowed in between (ReLU-like activations with ``f(0) = 0``,
max/avg pooling, dropout, flatten), so removing it changes no output.

Documented choices:

* **Constant units** (zero weights, non-zero bias) output a constant; they are **kept** (exact
  and simple) and counted in the report's ``constant`` column.
* **A layer with no live unit** keeps one dead unit (all zeros), so the model stays a valid
  chain of standard layers and its output is unchanged (the consumer sees a zero input);
  the report marks it ``empty``.
* The last Linear/Conv2d (the classifier) has no consumer: its outputs are never removed.
* A producer whose path to the consumer holds anything else (an unknown or custom module,
  ``Sigmoid``, a grouped conv consumer, BatchNorm without running statistics, ...) is left as
  it is and reported with status ``skipped`` and the reason. Layers inside a non-Sequential
  container are reported ``skipped`` too.
* BatchNorm is taken in eval mode (running statistics); the compact model is in eval mode.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Mapping, Optional

import torch
from torch import nn

from prunekit.compact.report import CompactionReport, LayerCompaction
from prunekit.compact.result import CompactResult
from prunekit.compact.slicing import take_bn, take_inputs, take_outputs
from prunekit.errors import ConfigError
from prunekit.prune.interop import from_torch_prune, torch_pruned_parameters
from prunekit.prune.mask import as_mask
from prunekit.structure import walkable

PRODUCERS = (nn.Linear, nn.Conv2d)
ZERO_MAPS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Hardtanh, nn.Identity,
             nn.Dropout, nn.Dropout1d, nn.Dropout2d)
"""Element-wise modules with ``f(0) == 0`` (a dead unit stays zero through them)."""
POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
"""Per-channel 2-D pooling (a zero channel stays zero); allowed after a Conv2d."""


@dataclass
class _Slot:
    name: str
    parent: nn.Module
    key: str

    @property
    def module(self) -> nn.Module:
        return self.parent._modules[self.key]


def compact_sequential(model: nn.Module, mask: Optional[Mapping[str, torch.Tensor]] = None) -> CompactResult:
    """Remove the dead units of an ``nn.Sequential`` (see the module docstring); see :func:`compact`."""
    if not walkable(model):
        raise ConfigError(
            f"compact() without example_inputs walks nn.Sequential models in order; got {type(model).__name__}: "
            f"pass example_inputs=<one batch> so its data flow can be traced"
        )
    if torch_pruned_parameters(model):
        work, torch_mask = from_torch_prune(model, inplace=False)
        mask = torch_mask if mask is None else as_mask(mask) & torch_mask
    else:
        work = copy.deepcopy(model)
    if mask is not None:
        as_mask(mask).apply_(work)
    work.eval()
    before = sum(p.numel() for p in work.parameters())
    slots = _slots(work, "")
    rows, kept = [], {}
    with torch.no_grad():
        for i, slot in enumerate(slots):
            if type(slot.module) in PRODUCERS:
                row, keep = _compact_at(slots, i)
                rows.append(row)
                if keep is not None:
                    kept[slot.name] = keep
            elif isinstance(slot.module, PRODUCERS):  # a subclass: its forward may differ
                rows.append(LayerCompaction.unchanged(slot.name, slot.module, "skipped",
                                                      f"{type(slot.module).__name__} is not a plain Linear/Conv2d"))
            elif _is_container(slot.module):
                rows += _opaque_rows(slot)
    after = sum(p.numel() for p in work.parameters())
    return CompactResult(work, CompactionReport(tuple(rows), before, after), kept)


def _slots(seq: nn.Sequential, prefix: str) -> list[_Slot]:
    out = []
    for key, module in seq._modules.items():
        if type(module) is nn.Sequential:
            out += _slots(module, f"{prefix}{key}.")
        else:
            out.append(_Slot(f"{prefix}{key}", seq, key))
    return out


def _is_container(module: nn.Module) -> bool:
    return next(module.children(), None) is not None


def _opaque_rows(slot: _Slot) -> list[LayerCompaction]:
    note = f"inside {slot.name!r} ({type(slot.module).__name__}), a module compaction cannot walk"
    return [LayerCompaction.unchanged(f"{slot.name}.{n}", m, "skipped", note)
            for n, m in slot.module.named_modules() if isinstance(m, PRODUCERS)]


def _compact_at(slots: list[_Slot], i: int) -> tuple[LayerCompaction, Optional[torch.Tensor]]:
    producer, name = slots[i].module, slots[i].name
    chain, consumer, factor, problem = _follow(slots, i)
    if problem:
        return LayerCompaction.unchanged(name, producer, "skipped", problem), None
    if consumer is None:
        return LayerCompaction.unchanged(name, producer, "output", "model outputs: never removed"), None
    zero_w, value = _zero_weight_units(producer), _constant_value(producer, chain)
    dead = zero_w & (value == 0)
    units = dead.numel()
    keep = torch.nonzero(~dead).flatten()
    empty = keep.numel() == 0
    if empty:
        keep = torch.zeros(1, dtype=torch.long, device=dead.device)
    row = LayerCompaction(name, type(producer).__name__, units, keep.numel(), int((zero_w & ~dead).sum()),
                          "empty" if empty else ("compacted" if keep.numel() < units else "unchanged"),
                          "no live unit: kept one zero unit" if empty else "")
    if keep.numel() == units:
        return row, None
    take_outputs(producer, keep)
    for m in chain:
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            take_bn(m, keep)
    take_inputs(consumer, keep, factor)
    return row, keep


def _follow(slots: list[_Slot], i: int):
    """Modules between producer ``i`` and its consumer: ``(chain, consumer, factor, problem)``."""
    producer, name = slots[i].module, slots[i].name
    conv = isinstance(producer, nn.Conv2d)
    units, flat, chain = producer.weight.shape[0], False, []
    for slot in slots[i + 1:]:
        m = slot.module
        if type(m) in PRODUCERS:
            return _consumer(name, slot, units, conv, flat, chain)
        bn_ok = type(m) is (nn.BatchNorm2d if conv and not flat else nn.BatchNorm1d) and \
            m.num_features == units and m.track_running_stats
        ok = (type(m) in ZERO_MAPS or bn_ok or (conv and not flat and type(m) in POOLS)
              or (isinstance(m, nn.Flatten) and m.start_dim == 1 and m.end_dim == -1))
        if not ok:
            return chain, None, 1, (f"{slot.name!r} ({type(m).__name__}) between {name!r} and the next layer "
                                    f"is not known to keep a zero unit zero")
        flat = flat or isinstance(m, nn.Flatten)
        chain.append(m)
    return chain, None, 1, None


def _consumer(name: str, slot: _Slot, units: int, conv: bool, flat: bool, chain: list):
    m = slot.module
    if isinstance(m, nn.Linear) and (flat or not conv) and m.in_features % units == 0 \
            and (conv or m.in_features == units):
        return chain, m, m.in_features // units, None
    if isinstance(m, nn.Conv2d) and conv and not flat and m.in_channels == units and m.groups == 1:
        return chain, m, 1, None
    return chain, None, 1, (f"its {units} outputs do not map onto the inputs of {slot.name!r} "
                            f"({type(m).__name__}{' with groups > 1' if getattr(m, 'groups', 1) > 1 else ''})")


def _zero_weight_units(layer: nn.Module) -> torch.Tensor:
    w = layer.weight.detach()
    return torch.count_nonzero(w.reshape(w.shape[0], -1), dim=1) == 0


def _constant_value(layer: nn.Module, chain: list) -> torch.Tensor:
    """Each unit's output after ``chain`` when its weights are zero (its bias, passed along)."""
    w = layer.weight.detach()
    value = layer.bias.detach().clone() if layer.bias is not None else w.new_zeros(w.shape[0])
    for m in chain:
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            shape = (1, -1, 1, 1) if isinstance(m, nn.BatchNorm2d) else (1, -1)
            value = m(value.reshape(shape)).reshape(-1)
        elif type(m) in ZERO_MAPS and not isinstance(m, nn.modules.dropout._DropoutNd):
            value = m(value)  # dropout is the identity in eval mode
    return value
