"""Inference latency of a pruned model: dense vs masked vs sparse vs compact, as ratios in one run.

Versions of one (model, mask), all run on the same inputs, interleaved (so a change of machine
load hits every version alike), median of many repeats after a warm-up:

* ``dense``: the model as an ordinary dense network (its pruned weights are zeros);
* ``masked``: ``torch.nn.utils.prune.custom_from_mask`` (weight = weight_orig * mask at every call),
  what masking-based pruning costs;
* ``sparse``: :func:`~prunekit.deploy.sparsify` (per Linear layer and batch size, the fastest
  measured of dense and sparse kernels);
* ``compact``: :func:`~prunekit.compact.compact` (pruned units removed; dense kernels): any model
  with ``example_inputs``, an ``nn.Sequential`` without;
* ``compact+sparse``: the compact model with sparse kernels where they pay (the deployable one).

Beside each ratio: the **FLOP ratio** (the FLOPs the version executes over the dense FLOPs: the
ideal speed-up if time were proportional to FLOPs) and the **parameter ratio**.

Example:
    >>> from prunekit.models import get_model
    >>> from prunekit.prune import prune_model
    >>> model = get_model("lenet300", seed=0)
    >>> rows = benchmark_latency(model, prune_model(model, "unit", 50.0), input_shape=(1, 28, 28),
    ...                          batch_sizes=(8,), repeats={8: 3})
    >>> [r.version for r in rows]
    ['dense', 'masked', 'sparse', 'compact', 'compact+sparse']
    >>> round(rows[3].param_ratio, 3)  # 784-150-50-10 of 784-300-100-10, biases included
    0.472
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Optional, Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils import prune as torch_prune
from torch.utils.flop_counter import FlopCounterMode

from ..batches import Inputs, make_inputs
from ..compact import compact
from ..deploy.sparse_linear import SparseLinear
from ..deploy.sparsify import sparsify
from ..prune.mask import as_mask
from ..prune.report import sparsity_report
from ..tables import aligned_table
from ..structure import model_structure
from ..timing import measure

VERSIONS = ("dense", "masked", "sparse", "compact", "compact+sparse")


@dataclass(frozen=True)
class LatencyRow:
    """One version at one batch size; ``ratio``, ``flop_ratio`` and ``param_ratio`` are relative to dense."""

    version: str
    batch: int
    median_s: float
    ratio: float
    samples_per_s: float
    flop_ratio: float
    param_ratio: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)


def masked_version(model: nn.Module, mask: Optional[Mapping[str, Tensor]]) -> nn.Module:
    """A copy that multiplies each masked parameter by its mask at every call (``torch.nn.utils.prune``)."""
    masked = copy.deepcopy(model).eval()
    modules = dict(masked.named_modules())
    for name, keep in (mask or {}).items():
        module_name, _, param = name.rpartition(".")
        torch_prune.custom_from_mask(modules[module_name], param, keep.to(torch.float32))
    return masked


def build_versions(model: nn.Module, mask=None, *, batch_sizes: Sequence[int], input_shape=None,
                   example_inputs: Any = None, repeats: int = 15,
                   kernels: Optional[Sequence[str]] = None) -> dict[str, nn.Module]:
    """The versions of :data:`VERSIONS` that apply (sparse kernels need Linear layers on the CPU;
    compaction needs ``example_inputs`` or an ``nn.Sequential``)."""
    dense = copy.deepcopy(model).eval()
    if mask is not None:
        as_mask(mask).apply_(dense)
    kw: dict[str, Any] = dict(batch_sizes=batch_sizes, input_shape=input_shape, example_inputs=example_inputs,
                              repeats=repeats)
    if kernels is not None:
        kw["kernels"] = kernels
    versions = {"dense": dense, "masked": masked_version(dense, mask)}
    has_linear = any(type(m) is nn.Linear for m in dense.modules())
    if has_linear:
        versions["sparse"] = sparsify(dense, **kw)
    structure = model_structure(dense, example_inputs)
    if structure.removes_units:
        small = compact(dense, structure=structure).model
        versions["compact"] = small
        if has_linear:
            versions["compact+sparse"] = sparsify(small, **kw)
    return versions


def count_flops(model: nn.Module, args: tuple, kwargs: dict) -> int:
    """FLOPs of one call as PyTorch's ``FlopCounterMode`` counts them (matrix products and convolutions)."""
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(*args, **kwargs)
    return counter.get_total_flops()


def _sparse_flops(version: nn.Module, source: nn.Module, base: int, batch: int, one: tuple[tuple, dict]) -> int:
    """``base`` FLOPs less what the Linear layers running sparse kernels at ``batch`` skip (their zeros)."""
    args, kwargs = one
    rows = {r.name: r for r in sparsity_report(source, example_inputs=kwargs or args).rows}
    saved = 0
    for name, runner in version.named_modules():
        row = rows.get(name)
        if isinstance(runner, SparseLinear) and row is not None and row.params:
            positions = row.dense_flops // (2 * row.params)
            if runner.choice.get(batch * positions, "dense") != "dense":
                saved += (row.dense_flops - row.effective_flops) * batch
    return base - saved


@torch.inference_mode()
def benchmark_latency(
    model: nn.Module,
    mask: Optional[Mapping[str, Tensor]] = None,
    *,
    input_shape: Optional[Sequence[int]] = None,
    example_inputs: Any = None,
    batch_sizes: Sequence[int] = (1, 256),
    repeats: Optional[Mapping[int, int]] = None,
) -> list[LatencyRow]:
    """Median latency, throughput, FLOP and parameter ratios of every version at every batch size.

    Args:
        model: the model (not modified).
        mask: its pruning mask (applied to copies).
        input_shape: one sample's shape (random inputs), or:
        example_inputs: one batch of any form (tensor, tuple, dict), resized to each batch size;
            it also lets any model be compacted.
        batch_sizes: batch sizes to measure.
        repeats: ``{batch size: timed calls per version}``; default 200 at batch 1, 40 above 64,
            else 100.

    Returns:
        One :class:`LatencyRow` per (batch size, version), dense first.
    """
    inputs: Inputs = make_inputs(input_shape, example_inputs)
    versions = build_versions(model, mask, batch_sizes=batch_sizes, input_shape=input_shape,
                              example_inputs=example_inputs)
    params = {k: sum(p.numel() for p in m.parameters()) for k, m in versions.items()}
    sources = {"sparse": versions["dense"], "compact+sparse": versions.get("compact")}
    rows = []
    for batch in batch_sizes:
        n = (repeats or {}).get(batch, 200 if batch == 1 else (40 if batch > 64 else 100))
        args, kwargs = inputs(batch)
        times = measure({k: (lambda m=m: m(*args, **kwargs)) for k, m in versions.items()}, repeats=n, warmup=5)
        counted = {k: count_flops(m, args, kwargs) for k, m in versions.items()
                   if k in ("dense", "compact")}
        for name, module in versions.items():
            flops = counted.get(name, counted["dense"])
            if name in sources:
                base = counted["dense"] if name == "sparse" else counted["compact"]
                flops = _sparse_flops(module, sources[name], base, batch, inputs(1))
            rows.append(LatencyRow(name, batch, times[name], times[name] / times["dense"], batch / times[name],
                                   flops / max(counted["dense"], 1), params[name] / params["dense"]))
    return rows


def format_latency(rows: Sequence[LatencyRow]) -> str:
    """A plain-text table of :func:`benchmark_latency`'s rows."""
    head = ["version", "batch", "median ms", "x dense time", "speed-up", "samples/s", "FLOP ratio", "param ratio"]
    lines = [[r.version, str(r.batch), f"{r.median_s * 1e3:.3f}", f"{r.ratio:.3f}", f"{1 / r.ratio:.2f}x",
              f"{r.samples_per_s:,.0f}", f"{r.flop_ratio:.3f}", f"{r.param_ratio:.3f}"] for r in rows]
    return aligned_table(head, lines, right=range(1, len(head)))
