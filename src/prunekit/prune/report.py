"""Per-layer sparsity, live units and FLOPs of a (masked) model.

Counts cover the weights of the prunable layers (``nn.Linear``, ``nn.Conv2d``); biases and
normalisation parameters are not counted. Two totals are reported: over the **pruned layers**
(the weights the mask covers) and over **all layers** (every Linear/Conv2d weight, the output
layer included), so "95% sparse" always says over what.

FLOPs are per sample, a multiply-add counts as 2, bias additions are ignored; they need one
forward pass on an input of the model's shape (``input_shape``), else they are not reported:

* Linear: dense ``2 * in * out``, effective ``2 * nnz(weight)`` (times the number of positions
  when the input has extra dims, e.g. ``[B, T, in]``);
* Conv2d: dense ``2 * numel(weight) * H_out * W_out``, effective ``2 * nnz(weight) * H_out * W_out``
  (``groups`` is accounted for since ``weight`` is ``[out, in / groups, kh, kw]``).

Example:
    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10))
    >>> from prunekit.prune import prune_model
    >>> report = sparsity_report(model, prune_model(model, "weight", 90.0), input_shape=(1, 1, 28, 28))
    >>> round(report.pruned.sparsity, 2), round(report.total.sparsity, 2)
    (90.0, 88.87)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Optional, Sequence

import torch
from torch import nn

from prunekit.batches import as_args, resize_batch
from prunekit.errors import ConfigError
from prunekit.prune.mask import Mask, as_mask
from prunekit.prune.layers import classifier_name, param_name, prunable_layers
from prunekit.prune.methods import removes_units
from prunekit.tables import aligned_table


@dataclass(frozen=True)
class LayerStats:
    """One row of a :class:`SparsityReport` (totals have ``name="total"`` / ``"pruned layers"``).

    FLOPs are ``None`` when the report was made without an input shape.
    """

    name: str
    type: str
    shape: tuple[int, ...]
    params: int
    nonzero: int
    units: int
    live_units: int
    dense_flops: Optional[int]
    effective_flops: Optional[int]
    masked: bool = False

    @property
    def sparsity(self) -> float:
        """Percentage of zero weights."""
        return 100.0 * (self.params - self.nonzero) / self.params if self.params else 0.0


@dataclass(frozen=True)
class SparsityReport:
    """Per-layer rows, the total over the pruned (masked) layers and the total over all layers."""

    rows: list[LayerStats]
    total: LayerStats
    pruned: LayerStats

    def to_dict(self) -> dict:
        """``{"rows": [...], "pruned": row dict, "total": row dict}`` (JSON-serialisable)."""
        return {"rows": [_row_dict(r) for r in self.rows], "pruned": _row_dict(self.pruned),
                "total": _row_dict(self.total)}

    def format_table(self) -> str:
        """An aligned plain-text table (FLOPs in millions, per sample); ``*`` marks the pruned layers."""
        head = ["layer", "type", "shape", "params", "nonzero", "nonzero %", "live units", "MFLOPs dense",
                "MFLOPs eff."]
        rows = [_cells(r) for r in self.rows]
        top, *lines = aligned_table(head, [*rows, _cells(self.pruned), _cells(self.total)],
                                    right=range(3, len(head))).split("\n")
        rule = "-" * len(top)
        return "\n".join([top, rule, *lines[:len(rows)], rule, *lines[len(rows):],
                          "(* = pruned layer; sparsity over the pruned layers and over all layers' weights)"])


def sparsity_report(
    model: nn.Module,
    mask: Optional[Mapping[str, torch.Tensor]] = None,
    input_shape: Optional[Sequence[int]] = None,
    *,
    example_inputs: Any = None,
) -> SparsityReport:
    """Count weights, nonzeros, live units and FLOPs of each prunable layer.

    Args:
        model: the model (not modified; run once in eval mode on a zero input for FLOPs).
        mask: optional mask to apply virtually (entries it prunes count as zero); the layers it
            covers are the "pruned layers". Without it the model's actual zeros are counted, and
            every layer holding a zero weight counts as pruned.
        input_shape: shape of the zero input used to find each layer's output size (the first
            dim is the batch), e.g. ``(1, 1, 28, 28)``; without it FLOPs are not reported.
            Layers not called in that forward pass get 0 FLOPs.
        example_inputs: instead of ``input_shape``, one batch of any form (tensor, tuple or dict
            of model arguments); FLOPs are per sample of it.

    Returns:
        A :class:`SparsityReport`. A unit is live if any of its weights is nonzero.

    Raises:
        ConfigError: if the model has no prunable layer, or cannot run on ``input_shape``.

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
        >>> sparsity_report(model, input_shape=(1, 1, 28, 28)).total.dense_flops
        15680
    """
    mask = as_mask(mask)
    if mask is not None:
        mask.validate(model)
    if example_inputs is not None:
        positions = _positions(model, as_args(example_inputs))
    elif input_shape is not None:
        positions = _positions(model, ((_zeros(model, tuple(input_shape)),), {}))
    else:
        positions = None
    rows = [_layer_stats(name, m, mask, None if positions is None else positions.get(name, 0))
            for name, m in prunable_layers(model)]
    if not rows:
        raise ConfigError(f"{type(model).__name__} has no nn.Linear or nn.Conv2d layer to report")
    return SparsityReport(rows, _sum("total", rows), _sum("pruned layers", [r for r in rows if r.masked]))


_SUMMED = ("params", "nonzero", "units", "live_units", "dense_flops", "effective_flops")


def _sum(name: str, rows: list[LayerStats]) -> LayerStats:
    values = []
    for f in _SUMMED:
        items = [getattr(r, f) for r in rows]
        values.append(None if any(v is None for v in items) else sum(items))
    return LayerStats(name, "", (), *values, masked=bool(rows))


def _layer_stats(name: str, module: nn.Module, mask: Optional[Mask], positions: Optional[int]) -> LayerStats:
    w = module.weight.detach()
    key = param_name(name, "weight")
    if mask is not None and key in mask:
        w = w.masked_fill(~mask[key].to(w.device), 0)
    nnz = int(torch.count_nonzero(w))
    live = int(w.reshape(w.shape[0], -1).ne(0).any(dim=1).sum())
    masked = key in mask if mask is not None else nnz < w.numel()
    return LayerStats(
        name=name, type=type(module).__name__, shape=tuple(w.shape), params=w.numel(),
        nonzero=nnz, units=w.shape[0], live_units=live,
        dense_flops=None if positions is None else 2 * w.numel() * positions,
        effective_flops=None if positions is None else 2 * nnz * positions, masked=masked,
    )


def _zeros(model: nn.Module, shape: tuple[int, ...]) -> torch.Tensor:
    param = next(model.parameters(), None)
    return torch.zeros(shape, dtype=param.dtype if param is not None else torch.float32,
                       device=param.device if param is not None else "cpu")


def _positions(model: nn.Module, inputs: tuple[tuple, dict]) -> dict[str, int]:
    """Output positions per sample of each prunable layer (H_out*W_out for Conv2d, tokens for a sequence)."""
    counts: dict[str, int] = {}

    def hook(name):
        def fn(module, inputs, output):
            per_sample = output.numel() // max(output.shape[0], 1)
            counts[name] = counts.get(name, 0) + per_sample // module.weight.shape[0]
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in prunable_layers(model)]
    modes = {m: m.training for m in model.modules()}
    args, kwargs = inputs
    try:
        model.eval()
        with torch.no_grad():
            model(*args, **kwargs)
    except Exception as exc:
        shapes = [list(a.shape) for a in args if isinstance(a, torch.Tensor)]
        raise ConfigError(
            f"cannot run {type(model).__name__} on inputs of shape {shapes[0] if len(shapes) == 1 else shapes} to "
            f"find layer output sizes ({type(exc).__name__}: {exc}); pass the input shape the model expects") from None
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes.items():
            m.training = mode
    return counts


def _row_dict(row: LayerStats) -> dict:
    d = asdict(row)
    d["shape"] = list(row.shape)
    d["sparsity"] = row.sparsity
    return d


def _cells(r: LayerStats) -> list[str]:
    flops = lambda v: "-" if v is None else f"{v / 1e6:.3f}"  # noqa: E731
    name = f"{r.name} *" if r.masked and r.type else r.name
    return [
        name, r.type, "x".join(map(str, r.shape)), f"{r.params:,}", f"{r.nonzero:,}",
        f"{100.0 - r.sparsity:.2f}", f"{r.live_units}/{r.units}", flops(r.dense_flops), flops(r.effective_flops),
    ]


def describe_pruned(model: nn.Module, mask: Mask, method: str, input_shape: Optional[Sequence[int]] = None,
                    example_inputs: Any = None) -> dict[str, Any]:
    """Counts for a pruned model as sweeps and plans record them: the actual sparsity (of units, the output
    layer left out, for a method that removes units; else of the pruned layers' weights), non-zeros, FLOPs
    (with ``input_shape`` or ``example_inputs``) and each pruned layer's sparsity."""
    if example_inputs is not None:
        report = sparsity_report(model, mask, example_inputs=resize_batch(example_inputs, 1))
    else:
        report = sparsity_report(model, mask, input_shape=(1, *input_shape) if input_shape else None)
    pruned = [r for r in report.rows if r.masked]
    if removes_units(method):  # the output layer's units are the model's outputs: never pruned, never counted
        pruned = [r for r in pruned if r.name != classifier_name(model)]
        units = sum(r.units for r in pruned)
        actual = 100.0 * (units - sum(r.live_units for r in pruned)) / max(units, 1)
    else:
        actual = report.pruned.sparsity
    total = report.total
    per_layer = {r.name: round(100.0 * (r.units - r.live_units) / r.units if removes_units(method) else r.sparsity, 2)
                 for r in pruned if r.units}
    return {
        "sparsity_actual": actual, "weight_sparsity_pruned": report.pruned.sparsity,
        "weight_sparsity_all": total.sparsity, "params_total": total.params, "params_nonzero": total.nonzero,
        "units_live": total.live_units, "flops_dense": total.dense_flops, "flops_effective": total.effective_flops,
        "layer_sparsity": per_layer,
    }
