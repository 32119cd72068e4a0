"""Per-layer sparsity, live units and FLOPs of a (masked) model.

Counts cover the weights of the prunable layers (``nn.Linear``, ``nn.Conv2d``); biases and
BatchNorm parameters are not counted. FLOPs are per sample, a multiply-add counts as
2 FLOPs, and bias additions are ignored:

* Linear: dense ``2 * in * out``, effective ``2 * nnz(weight)`` (times the number of positions
  when the input has extra dims, e.g. ``[B, T, in]``);
* Conv2d: dense ``2 * numel(weight) * H_out * W_out``, effective ``2 * nnz(weight) * H_out * W_out``
  (``groups`` is accounted for since ``weight`` is ``[out, in / groups, kh, kw]``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping, Optional, Sequence

import torch
from torch import nn

from prunekit.errors import ConfigError
from prunekit.prune.mask import Mask
from prunekit.prune.targets import param_name, prunable_layers


@dataclass(frozen=True)
class LayerStats:
    """One row of a :class:`SparsityReport` (the total row has ``name="total"``)."""

    name: str
    type: str
    shape: tuple[int, ...]
    params: int
    nonzero: int
    units: int
    live_units: int
    dense_flops: int
    effective_flops: int

    @property
    def sparsity(self) -> float:
        """Percentage of zero weights."""
        return 100.0 * (self.params - self.nonzero) / self.params if self.params else 0.0


@dataclass(frozen=True)
class SparsityReport:
    """Per-layer rows and a total row; see :func:`sparsity_report`."""

    rows: list[LayerStats]
    total: LayerStats

    def to_dict(self) -> dict:
        """``{"rows": [row dicts], "total": row dict}`` (JSON-serialisable)."""
        return {"rows": [_row_dict(r) for r in self.rows], "total": _row_dict(self.total)}

    def format_table(self) -> str:
        """An aligned plain-text table (FLOPs in millions, per sample)."""
        head = ["layer", "type", "shape", "params", "nonzero", "nonzero %", "live units",
                "MFLOPs dense", "MFLOPs eff."]
        lines = [_cells(r) for r in self.rows] + [_cells(self.total)]
        widths = [max(len(x) for x in col) for col in zip(head, *lines)]
        fmt = lambda cells: "  ".join(  # noqa: E731
            c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        )
        rule = "-" * len(fmt(head))
        return "\n".join([fmt(head), rule, *map(fmt, lines[:-1]), rule, fmt(lines[-1])])


def sparsity_report(
    model: nn.Module,
    mask: Optional[Mapping[str, torch.Tensor]] = None,
    input_shape: Sequence[int] = (1, 1, 28, 28),
) -> SparsityReport:
    """Count weights, nonzeros, live units and FLOPs of each prunable layer.

    Args:
        model: the model (not modified; run once in eval mode on a zero input).
        mask: optional mask to apply virtually (entries it prunes count as zero);
            without it the model's actual zeros are counted.
        input_shape: shape of the zero input used to find each layer's output size
            (the first dim is the batch). Layers not called in that forward pass get 0 FLOPs.

    Returns:
        A :class:`SparsityReport`. A unit is live if any of its weights is nonzero.

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
        >>> sparsity_report(model).total.dense_flops
        15680
    """
    if mask is not None:
        mask = mask if isinstance(mask, Mask) else Mask(mask)
        mask.validate(model)
    positions = _positions(model, tuple(input_shape))
    rows = [_layer_stats(name, m, mask, positions.get(name, 0)) for name, m in prunable_layers(model)]
    if not rows:
        raise ConfigError(f"{type(model).__name__} has no nn.Linear or nn.Conv2d layer to report")
    total = LayerStats("total", "", (), *(sum(getattr(r, f) for r in rows) for f in _SUMMED))
    return SparsityReport(rows, total)


_SUMMED = ("params", "nonzero", "units", "live_units", "dense_flops", "effective_flops")


def _layer_stats(name: str, module: nn.Module, mask: Optional[Mask], positions: int) -> LayerStats:
    w = module.weight.detach()
    key = param_name(name, "weight")
    if mask is not None and key in mask:
        w = w.masked_fill(~mask[key].to(w.device), 0)
    nnz = int(torch.count_nonzero(w))
    live = int(w.reshape(w.shape[0], -1).ne(0).any(dim=1).sum())
    return LayerStats(
        name=name, type=type(module).__name__, shape=tuple(w.shape), params=w.numel(),
        nonzero=nnz, units=w.shape[0], live_units=live,
        dense_flops=2 * w.numel() * positions, effective_flops=2 * nnz * positions,
    )


def _positions(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """Output positions per sample of each prunable layer (H_out*W_out for Conv2d)."""
    counts: dict[str, int] = {}

    def hook(name):
        def fn(module, inputs, output):
            per_sample = output.numel() // max(output.shape[0], 1)
            counts[name] = counts.get(name, 0) + per_sample // module.weight.shape[0]
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in prunable_layers(model)]
    modes = {m: m.training for m in model.modules()}
    param = next(model.parameters(), None)
    x = torch.zeros(input_shape, dtype=param.dtype if param is not None else torch.float32,
                    device=param.device if param is not None else "cpu")
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    except Exception as exc:
        raise ConfigError(
            f"cannot run {type(model).__name__} on a zero input of shape {input_shape} to find "
            f"layer output sizes ({exc}); pass input_shape= matching the model"
        ) from exc
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
    return [
        r.name, r.type, "x".join(map(str, r.shape)), f"{r.params:,}", f"{r.nonzero:,}",
        f"{100.0 - r.sparsity:.2f}", f"{r.live_units}/{r.units}",
        f"{r.dense_flops / 1e6:.3f}", f"{r.effective_flops / 1e6:.3f}",
    ]
