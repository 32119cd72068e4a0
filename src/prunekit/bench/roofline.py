"""How close a layer runs to the memory-bandwidth limit: bytes it reads, the bandwidth it achieves, and the
machine's read bandwidth measured in the same run by a stream-like probe.

At batch 1 a linear layer does two flops per weight it reads, so its time is bound by the bytes of its
weight: ``bytes(form) / bandwidth``. :func:`read_bandwidth` sums a buffer far larger than the caches with
the same threads (the compiled probe when built, else ``torch.sum``); :func:`layer_roofline` times each
linear layer of a (sparsified) model at batch 1 and reports its bytes, GB/s and share of the probe's.

Example:
    >>> import torch
    >>> from torch import nn
    >>> rows = layer_roofline(nn.Sequential(nn.Linear(256, 256)), repeats=3, bandwidth=10.0)
    >>> rows[0]["kernel"], rows[0]["bytes"]
    ('dense', 263168)
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..deploy.sparse_linear import SparseLinear
from ..kernels import available
from ..kernels import compiled
from ..timing import measure

PROBE_MB = 512
"""Size of the bandwidth probe's buffer: far beyond any last-level cache."""


def read_bandwidth(megabytes: int = PROBE_MB, repeats: int = 5, threads: Optional[int] = None) -> float:
    """The machine's read bandwidth in GB/s: the median of ``repeats`` sums over a ``megabytes`` buffer."""
    threads = threads or torch.get_num_threads()
    buffer = torch.ones(megabytes * 2 ** 20 // 4)
    if available():
        probe = compiled.module().read_bandwidth
        run = lambda: probe(buffer.data_ptr(), buffer.numel(), threads)  # noqa: E731
    else:
        run = lambda: torch.sum(buffer)  # noqa: E731
    run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return buffer.numel() * 4 / statistics.median(times) / 1e9


def weight_bytes(layer: nn.Module, kernel: str) -> int:
    """Bytes one batch-1 product reads of ``layer``'s weight (and bias) with ``kernel``."""
    weight = layer.weight
    bias = 0 if getattr(layer, "bias", None) is None else layer.bias.numel() * layer.bias.element_size()
    if isinstance(layer, SparseLinear) and kernel.startswith("prunekit_"):
        return layer.packed(kernel.removeprefix("prunekit_")).nbytes + bias
    if isinstance(layer, SparseLinear) and kernel in ("scipy_csr", "torch_csr"):
        nnz = int(torch.count_nonzero(weight))
        return nnz * (weight.element_size() + 4) + (weight.shape[0] + 1) * 4 + bias
    return weight.numel() * weight.element_size() + bias


def layer_roofline(model: nn.Module, *, repeats: int = 50, bandwidth: Optional[float] = None) -> list[dict[str, Any]]:
    """One row per linear layer of ``model`` (``nn.Linear`` or :class:`SparseLinear` with its batch-1 choice):
    ``{layer, kernel, bytes, ms, gbps, bandwidth, fraction}``; ``fraction`` is the achieved share of the read
    bandwidth (measured now unless ``bandwidth`` in GB/s is given)."""
    bandwidth = bandwidth if bandwidth is not None else read_bandwidth()
    rows = []
    with torch.inference_mode():
        for name, layer in model.named_modules():
            if not isinstance(layer, (nn.Linear, SparseLinear)):
                continue
            x = torch.randn(1, layer.in_features)
            if isinstance(layer, SparseLinear):
                kernel = layer.choice.get(1) or layer.calibrate(x)
                run = lambda layer=layer, kernel=kernel: layer.run(kernel, x)  # noqa: E731
            else:
                kernel = "dense"
                run = lambda layer=layer: F.linear(x, layer.weight, layer.bias)  # noqa: E731
            seconds = measure({"run": run}, repeats)["run"]
            nbytes = weight_bytes(layer, kernel)
            gbps = nbytes / seconds / 1e9
            rows.append({"layer": name, "kernel": kernel, "bytes": nbytes, "ms": seconds * 1e3, "gbps": gbps,
                         "bandwidth": bandwidth, "fraction": gbps / bandwidth})
    return rows


def format_roofline(rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`layer_roofline` as an aligned table."""
    lines = [f"{'layer':30s} {'kernel':17s} {'bytes':>12s} {'ms':>8s} {'GB/s':>7s} {'of probe':>8s}"]
    for r in rows:
        lines.append(f"{r['layer']:30s} {r['kernel']:17s} {r['bytes']:>12,} {r['ms']:>8.3f} {r['gbps']:>7.1f} "
                     f"{r['fraction']:>8.0%}")
    if rows:
        lines.append(f"read bandwidth (probe, same run): {rows[0]['bandwidth']:.1f} GB/s; layers whose weights fit "
                     f"in the caches can exceed it")
    return "\n".join(lines)
