"""Sparse kernels against the dense product, side by side, on layer shapes of language models.

For each weight shape, sparsity (or N:M pattern) and batch size, every kernel computes ``x W^T`` on the same
random pruned weight, interleaved with ``F.linear`` on the dense weight (medians of repeats); the table gives
each kernel's time as a ratio to dense, the bytes it reads of the weight, the bandwidth it reaches, and its
format's byte limit (its bytes over the dense bytes: the ratio a purely memory-bound kernel would reach).
The machine's read bandwidth is probed in the same run. The targets of the sparse-kernel issue are checked
against the best fp32 kernel.

    python scripts/bench_kernels.py                       # 4096x4096 and 11008x4096, fp32, batch 1 and 16
    python scripts/bench_kernels.py --shapes 1024x1024 --sparsities 90 --batches 1,64,256
"""

from __future__ import annotations

import argparse
import time

import scipy.sparse
import torch
import torch.nn.functional as F

from prunekit.bench.roofline import read_bandwidth
from prunekit.kernels import PackedWeight, available, vector_isa
from prunekit.prune.nm import nm_keep_mask
from prunekit.quantize.uniform import pack_int8
from prunekit.timing import measure

TARGETS = {(1, "50"): 0.75, (1, "2:4"): 0.70, (1, "80"): 0.35, (1, "90"): 0.22, (1, "95"): 0.14, (16, "90"): 0.40}


def pruned_weight(rows: int, cols: int, shape: str, gen: torch.Generator) -> torch.Tensor:
    w = torch.randn(rows, cols, generator=gen)
    if ":" in shape:
        n, m = map(int, shape.split(":"))
        return w * nm_keep_mask(w.abs(), n, m)
    return w * (torch.rand(rows, cols, generator=gen) >= float(shape) / 100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="4096x4096,11008x4096", help="ROWSxCOLS,... (out x in features)")
    parser.add_argument("--sparsities", default="50,2:4,80,90,95", help="percents or N:M patterns")
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--values", default="fp32,fp16,int8", help="value types of prunekit's kernels to time")
    parser.add_argument("--library", action="store_true", help="also time scipy's and torch's CSR kernels")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not available():
        raise SystemExit("prunekit's compiled kernels are not built: reinstall prunekit with a C compiler")
    bandwidth = read_bandwidth()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, kernels: {vector_isa()}; read bandwidth "
          f"(probe) {bandwidth:.1f} GB/s")
    print("| shape | sparsity | batch | kernel | ms | x dense | weight bytes | GB/s | byte limit | x dense / limit |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|")
    gen = torch.Generator().manual_seed(0)
    verdicts = []
    for shape_text in args.shapes.split(","):
        rows, cols = map(int, shape_text.split("x"))
        for sparsity in args.sparsities.split(","):
            w = pruned_weight(rows, cols, sparsity, gen)
            pattern = tuple(map(int, sparsity.split(":"))) if ":" in sparsity else None
            packed = {f"prunekit_{form}" + ("" if values == "fp32" else f"_{values}"):
                      (pack_int8(w, form, pattern=pattern) if values == "int8"
                       else PackedWeight.pack(w, form, values=values, pattern=pattern))
                      for form in ("csr", "bitmask") for values in args.values.split(",")}
            dense_bytes = w.numel() * 4
            sizes = {"dense": dense_bytes, **{k: p.nbytes for k, p in packed.items()}}
            scipy_w = scipy.sparse.csr_matrix(w.numpy()) if args.library else None
            torch_w = w.to_sparse_csr() if args.library else None
            if args.library:
                sizes["scipy_csr"] = sizes["torch_csr"] = int(scipy_w.nnz) * 8 + (rows + 1) * 4
            for batch in map(int, args.batches.split(",")):
                x = torch.randn(batch, cols, generator=gen)
                fns = {"dense": lambda: F.linear(x, w)}
                fns.update({k: (lambda p=p: p.matmul(x)) for k, p in packed.items()})
                if args.library:
                    xn = x.numpy()
                    fns["scipy_csr"] = lambda: scipy_w @ xn.T
                    fns["torch_csr"] = lambda: torch.mm(torch_w, x.T)
                times = measure(fns, args.repeats)
                for kernel, seconds in times.items():
                    ratio = seconds / times["dense"]
                    limit = sizes[kernel] / dense_bytes
                    print(f"| {shape_text} | {sparsity} | {batch} | {kernel} | {seconds * 1e3:.3f} | {ratio:.3f} | "
                          f"{sizes[kernel]:,} | {sizes[kernel] / seconds / 1e9:.1f} | {limit:.3f} | "
                          f"{ratio / limit:.2f} |", flush=True)
                target = TARGETS.get((batch, sparsity))
                if target is not None:
                    fp32 = {k: t for k, t in times.items() if k in ("prunekit_csr", "prunekit_bitmask")}
                    best = min(fp32, key=fp32.get)
                    ratio = fp32[best] / times["dense"]
                    verdicts.append(f"{shape_text} {sparsity} batch {batch}: {best} {ratio:.3f}x dense, target <= "
                                    f"{target} {'met' if ratio <= target else 'NOT met'}")
    print(f"\nread bandwidth (probe, again): {read_bandwidth():.1f} GB/s")
    print("\n".join(verdicts))


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"({time.perf_counter() - started:.0f} s)")
