"""Structured pruning of the test zoo, prunekit beside Torch-Pruning (if installed), at 50% of the channels.

Usage: python scripts/bench_structure.py [--models NAME,...] [--ratio 0.5] [--repeats 30] [--no-peer]

For every model of tests/zoo.py (hand-written CNNs, nn.MultiheadAttention, and Hugging Face ResNet,
MobileNetV2, ViT, BERT, GPT-2, Llama with grouped-query attention, built from small configs), each tool
prunes 50% of the channels (layer-wise, L2 importance, outputs kept) and removes them. Printed per
model and tool: supported or not, parameter and MAC ratios (PyTorch's FlopCounterMode), CPU latency
ratios at batch 1 and 32 against the dense model (medians of interleaved repeats, one run), the seconds
of the trace (prunekit: torch.export and coupling, once per model; Torch-Pruning: building its
dependency graph), of the pruning after it (scores and masks) and of the removal (Torch-Pruning
removes as it prunes), and for prunekit the largest output difference to the masked model (relative to
the output scale) on inputs of another batch size. Where a model has groups mixed by a normalisation
(a transformer's residual width through LayerNorm), a second prunekit row prunes them too
(``include_inexact=True``), as Torch-Pruning does: that is not exact, and the difference says by how
much. Torch-Pruning is an optional peer
(``pip install torch-pruning``), run with its default API (no per-model head declarations), each model
in a child process with a time limit (it does not finish on Llama).
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing as mp
import sys
import time
import traceback
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from zoo import NAMES, build  # noqa: E402

import prunekit  # noqa: E402
import prunekit.structure  # noqa: E402
from prunekit.batches import as_args, resize_batch  # noqa: E402
from prunekit.bench.latency import count_flops  # noqa: E402
from prunekit.compact.graph import outputs  # noqa: E402
from prunekit.prune import Pruner, PruneSpec  # noqa: E402
from prunekit.timing import measure  # noqa: E402

warnings.filterwarnings("ignore")


def run(model, inputs):
    args, kwargs = as_args(inputs)
    return model(*args, **kwargs)


def ratios(dense, small, example, repeats):
    args, kwargs = as_args(resize_batch(example, 1))
    macs = count_flops(small, args, kwargs) / max(count_flops(dense, args, kwargs), 1)
    params = sum(p.numel() for p in small.parameters()) / sum(p.numel() for p in dense.parameters())
    latency = {}
    with torch.inference_mode():
        for batch in (1, 32):
            x = resize_batch(example, batch)
            times = measure({"dense": lambda: run(dense, x), "small": lambda: run(small, x)}, repeats=repeats)
            latency[batch] = times["small"] / times["dense"]
    return params, macs, latency


def prunekit_row(name, ratio, repeats, inexact=False):
    model, example, fresh = build(name)
    dense = copy.deepcopy(model)
    started = time.perf_counter()
    pruner = Pruner(model, PruneSpec("unit", include_inexact=inexact), example_inputs=example)
    pruner.structure.graph  # the one trace (torch.export + coupling), timed apart
    traced = time.perf_counter()
    mask = pruner.prune(100 * ratio)
    pruned = time.perf_counter()
    small = prunekit.compact(model, mask, structure=pruner.structure, include_inexact=inexact).model
    done = time.perf_counter()
    want, got = outputs(model, fresh), outputs(small, fresh)
    diff = max(float((a - b).abs().max()) / max(1.0, float(a.abs().max())) for a, b in zip(want, got))
    params, macs, latency = ratios(dense, small, example, repeats)
    return dict(ok=True, params=params, macs=macs, b1=latency[1], b32=latency[32], trace=traced - started,
                prune=pruned - traced, remove=done - pruned, diff=diff, traces=pruner.structure.traces)


def _logits(out):
    return out if isinstance(out, torch.Tensor) else out.logits


def _peer(name, ratio, repeats, queue):
    try:
        import torch_pruning as tp

        model, example, fresh = build(name)
        dense = copy.deepcopy(model)
        output = prunekit.prune.classifier_name(model)
        ignored = [model.get_submodule(output)] if output else []
        started = time.perf_counter()
        pruner = tp.pruner.MagnitudePruner(model, example, importance=tp.importance.MagnitudeImportance(p=2),
                                           pruning_ratio=ratio, ignored_layers=ignored, output_transform=_logits)
        traced = time.perf_counter()  # its dependency graph, built by tracing a forward pass
        pruner.step()  # scores, selects and removes in place: its prune and remove together
        done = time.perf_counter()
        run(model, fresh)  # must still run on other shapes
        params, macs, latency = ratios(dense, model, example, repeats)
        ok = params < 0.999
        queue.put(dict(ok=ok, params=params, macs=macs, b1=latency[1], b32=latency[32], trace=traced - started,
                       prune=done - traced, remove=None, note="" if ok else "nothing removed"))
    except Exception as exc:
        queue.put(dict(ok=False, note=f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:70]}"))


def peer_row(name, ratio, repeats, limit):
    context = mp.get_context("spawn")  # a forked child can deadlock in torch's thread pool
    queue = context.Queue()
    process = context.Process(target=_peer, args=(name, ratio, repeats, queue))
    process.start()
    try:
        return queue.get(timeout=limit)
    except Exception:
        return dict(ok=False, note=f"did not finish in {limit:.0f} s")
    finally:
        process.kill()
        process.join()


def fmt(row):
    if not row.get("ok"):
        return f"no ({row.get('note', '')})"
    remove = "(in prune)" if row["remove"] is None else f"{row['remove']:.3f}"
    text = (f"yes | {row['params']:.3f} | {row['macs']:.3f} | {row['b1']:.3f} | {row['b32']:.3f} | "
            f"{row['trace']:.3f} | {row['prune']:.3f} | {remove}")
    return text + (f" | {row['diff']:.1e}" if "diff" in row else " | -")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(NAMES))
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--limit", type=float, default=120.0, help="seconds per Torch-Pruning attempt")
    parser.add_argument("--no-peer", action="store_true")
    args = parser.parse_args()
    try:
        import torch_pruning
        peer = None if args.no_peer else torch_pruning.__version__
    except ImportError:
        peer = None
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; channel ratio {args.ratio}; "
          f"peer: {'Torch-Pruning ' + peer if peer else 'not installed'}\n")
    print("| model | tool | supported | params | MACs | latency b1 | latency b32 | trace s | prune s | remove s "
          "| max rel. diff |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.models.split(","):
        try:
            ours = prunekit_row(name, args.ratio, args.repeats)
        except Exception as exc:
            traceback.print_exc()
            ours = dict(ok=False, note=f"{type(exc).__name__}: {exc}")
        print(f"| {name} | prunekit | {fmt(ours)} |", flush=True)
        model, example, _ = build(name)
        if ours.get("ok") and ours["traces"] != 1:
            raise SystemExit(f"{name}: prunekit traced {ours['traces']} times, expected once")
        if any(not g.exact for g in prunekit.structure.trace(model, example).groups):
            wide = prunekit_row(name, args.ratio, args.repeats, inexact=True)
            print(f"| {name} | prunekit, include_inexact | {fmt(wide)} |", flush=True)
        if peer:
            print(f"| {name} | Torch-Pruning | {fmt(peer_row(name, args.ratio, args.repeats, args.limit))} |",
                  flush=True)


if __name__ == "__main__":
    main()
