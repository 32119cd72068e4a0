"""Inference latency of a pruned model: dense vs masked vs sparse vs compact, as ratios in one run.

Versions of one (model, mask), all run on the same random input, interleaved (so a change of
machine load hits every version alike), median of many repeats after a warm-up:

* ``dense``: the model as an ordinary dense network (its pruned weights are zeros);
* ``masked``: ``torch.nn.utils.prune.custom_from_mask`` (weight = weight_orig * mask at every call),
  what masking-based pruning costs;
* ``sparse``: :func:`~prunekit.sparse_infer.sparsify` (per layer and batch size, the fastest measured
  of dense and sparse kernels);
* ``compact``: :func:`~prunekit.prune.compact.compact` (dead units removed; dense kernels);
* ``compact+sparse``: the compact model with sparse kernels where they pay (the deployable one).

Beside each ratio: the **FLOP ratio**, the FLOPs the version executes over the dense FLOPs
(the ideal speed-up if time were proportional to FLOPs).

Example:
    >>> from prunekit.models import get_model
    >>> from prunekit.prune import prune_model
    >>> model = get_model("lenet300", seed=0)
    >>> rows = benchmark_latency(model, prune_model(model, "unit", 50.0), input_shape=(1, 28, 28),
    ...                          batch_sizes=(8,), repeats={8: 3})
    >>> [r.version for r in rows]
    ['dense', 'masked', 'sparse', 'compact', 'compact+sparse']
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Mapping, Optional, Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils import prune as torch_prune

from ..compact import compact
from ..deploy.sparse_linear import SparseLinear
from ..deploy.sparsify import sparsify
from ..prune.mask import as_mask
from ..prune.report import sparsity_report
from ..timing import measure

VERSIONS = ("dense", "masked", "sparse", "compact", "compact+sparse")


@dataclass(frozen=True)
class LatencyRow:
    """One version at one batch size; ``ratio`` and ``flop_ratio`` are relative to dense."""

    version: str
    batch: int
    median_s: float
    ratio: float
    samples_per_s: float
    flop_ratio: float

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


def build_versions(model: nn.Module, mask=None, *, input_shape: Sequence[int], batch_sizes: Sequence[int],
                   repeats: int = 15, kernels: Optional[Sequence[str]] = None) -> dict[str, nn.Module]:
    """The versions of :data:`VERSIONS` (those that apply: compaction needs an ``nn.Sequential``)."""
    dense = copy.deepcopy(model).eval()
    if mask is not None:
        as_mask(mask).apply_(dense)
    kw = dict(batch_sizes=batch_sizes, input_shape=input_shape, repeats=repeats)
    if kernels is not None:
        kw["kernels"] = kernels
    versions = {"dense": dense, "masked": masked_version(dense, mask), "sparse": sparsify(dense, **kw)}
    if isinstance(model, nn.Sequential):
        small = compact(dense).model
        versions.update({"compact": small, "compact+sparse": sparsify(small, **kw)})
    return versions


def flop_ratio(version: nn.Module, source: nn.Module, dense_flops: int, batch: int, input_shape) -> float:
    """FLOPs ``version`` executes at ``batch`` (sparse layers count non-zeros) over ``dense_flops``.

    ``source`` is the model ``version`` was built from (same layer names, plain Linear layers).
    """
    report = sparsity_report(source, input_shape=(1, *input_shape))
    runners = {n: m for n, m in version.named_modules() if isinstance(m, SparseLinear)}
    flops = 0
    for row in report.rows:
        runner = runners.get(row.name)
        sparse = runner is not None and runner.choice.get(batch, "dense") != "dense"
        flops += row.effective_flops if sparse else row.dense_flops
    return flops / max(dense_flops, 1)


@torch.inference_mode()
def benchmark_latency(
    model: nn.Module,
    mask: Optional[Mapping[str, Tensor]] = None,
    *,
    input_shape: Sequence[int],
    batch_sizes: Sequence[int] = (1, 256),
    repeats: Optional[Mapping[int, int]] = None,
) -> list[LatencyRow]:
    """Median latency, throughput and FLOP ratio of every version at every batch size.

    Args:
        model: the model (not modified).
        mask: its pruning mask (applied to copies).
        input_shape: one sample's shape.
        batch_sizes: batch sizes to measure.
        repeats: ``{batch size: timed calls per version}``; default 200 at batch 1, 40 above 64,
            else 100.

    Returns:
        One :class:`LatencyRow` per (batch size, version), dense first.

    """
    versions = build_versions(model, mask, input_shape=input_shape, batch_sizes=batch_sizes)
    sources = {"sparse": versions["dense"], "compact+sparse": versions.get("compact")}
    dense_flops = sparsity_report(versions["dense"], input_shape=(1, *input_shape)).total.dense_flops
    rows = []
    for batch in batch_sizes:
        n = (repeats or {}).get(batch, 200 if batch == 1 else (40 if batch > 64 else 100))
        x = torch.randn(batch, *input_shape)
        times = measure({k: (lambda m=m: m(x)) for k, m in versions.items()}, repeats=n, warmup=5)
        for name, module in versions.items():
            source = sources.get(name, module)
            ratio = flop_ratio(module, source, dense_flops, batch, input_shape) if name != "masked" else 1.0
            rows.append(LatencyRow(name, batch, times[name], times[name] / times["dense"],
                                   batch / times[name], ratio))
    return rows


def format_latency(rows: Sequence[LatencyRow]) -> str:
    """A plain-text table of :func:`benchmark_latency`'s rows."""
    head = ["version", "batch", "median ms", "x dense time", "speed-up", "samples/s", "FLOP ratio"]
    lines = [[r.version, str(r.batch), f"{r.median_s * 1e3:.3f}", f"{r.ratio:.3f}", f"{1 / r.ratio:.2f}x",
              f"{r.samples_per_s:,.0f}", f"{r.flop_ratio:.3f}"] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *lines)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([fmt(head), *map(fmt, lines)])
