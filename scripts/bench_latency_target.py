"""Latency target vs uniform channel pruning at the same measured latency and the same fine-tuning.

Usage (after `prunekit prune ... --target-latency 0.5 --schedule finetune --finetune-epochs E --out TARGETED`):

    python scripts/bench_latency_target.py --dense runs/resnet20-fmnist --targeted runs/resnet20-lat50 \
        --data-dir ../shared/data/fashion-mnist --out runs/resnet20-uniform

It prunes the dense model uniformly (every coupled group at the same unit sparsity) at each of
``--sparsities`` and fine-tunes each with the targeted run's schedule and recipe (kept in ``OUT/uniform-<k>``
and reused by a rerun). Then it measures every pruned model's compacted latency against the dense one in
one run (``--rounds`` rounds, each interleaving dense and pruned, the models taking turns; medians), and
compares the targeted model's accuracy with the uniform curve's, interpolated linearly at the targeted
model's measured latency. Accuracies are of one fine-tuning run each (one seed).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from prunekit.bench.compact_latency import compact_latency_ratio
from prunekit.checkpoint import load_checkpoint
from prunekit.schedules import Recovery
from prunekit.study import prune_checkpoint
from prunekit.training import TrainConfig


def uniform_checkpoints(args, pruning) -> dict[float, object]:
    recovery = Recovery(finetune=TrainConfig(**pruning["recovery"]["finetune"]))  # the targeted run's recipe
    found = {}
    for sparsity in (float(s) for s in args.sparsities.split(",")):
        folder = Path(args.out) / f"uniform-{sparsity:g}"
        if not (folder / "model.safetensors").is_file():
            prune_checkpoint(args.dense, method="unit", sparsity=sparsity, out=str(folder), data_dir=args.data_dir,
                             schedule=pruning["schedule"], recovery=recovery, progress=False)
        found[sparsity] = load_checkpoint(str(folder))
        print(f"  uniform {sparsity:g}%: test accuracy {found[sparsity].metrics['test_accuracy']:.4f}", flush=True)
    return found


def interpolate(points: list[tuple[float, float]], x: float) -> float | None:
    """Linear interpolation of ``(x, y)`` points at ``x``; None outside their range."""
    points = sorted(points)
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dense", required=True)
    parser.add_argument("--targeted", required=True)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", required=True, help="folder for the uniform checkpoints")
    parser.add_argument("--sparsities", default="30,40,50,60", help="uniform unit sparsities, %%")
    parser.add_argument("--rounds", type=int, default=5, help="latency measurements per model (median)")
    args = parser.parse_args()
    dense, targeted = load_checkpoint(args.dense), load_checkpoint(args.targeted)
    pruning, metrics = targeted.config["pruning"], targeted.metrics
    batch, example = metrics["latency_batch"], torch.randn(2, *dense.input_shape)
    uniform = uniform_checkpoints(args, pruning)
    models = {"targeted": targeted.mask, **{f"uniform {s:g}%": c.mask for s, c in uniform.items()}}
    ratios: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):  # the models take turns, so a slow spell hits them all
        for name, mask in models.items():
            ratios[name].append(compact_latency_ratio(dense.model, mask, example, batch_size=batch))
    latency = {name: statistics.median(values) for name, values in ratios.items()}
    epochs = pruning["recovery"]["finetune"]["epochs"]
    print(f"\nbatch {batch}; {pruning['schedule']} {epochs:g} epochs each; dense test accuracy "
          f"{dense.metrics['test_accuracy']:.4f}; latency ratios: medians of {args.rounds} rounds in this run, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| model | units removed % | test accuracy % | latency x dense (median) | rounds |")
    print("|---|---:|---:|---:|---|")
    rows = [("targeted", metrics["sparsity_actual"], metrics["test_accuracy"])]
    rows += [(f"uniform {s:g}%", s, c.metrics["test_accuracy"]) for s, c in uniform.items()]
    for name, sparsity, accuracy in rows:
        print(f"| {name} | {sparsity:.1f} | {100 * accuracy:.2f} | {latency[name]:.3f} | "
              f"{', '.join(f'{r:.3f}' for r in ratios[name])} |")
    target = metrics["latency_target"]
    met = "meets" if latency["targeted"] <= target else "MISSES"
    print(f"targeted plan {pruning['ratios']}: {met} the {target:g}x target here ({latency['targeted']:.3f}x; "
          f"{metrics['latency_ratio_measured']:.3f}x when it was pruned)")
    curve = [(latency[f"uniform {s:g}%"], c.metrics["test_accuracy"]) for s, c in uniform.items()]
    matched = interpolate(curve, latency["targeted"])
    if matched is None:
        print("the uniform curve does not span the targeted model's latency: add sparsities (--sparsities)")
    else:
        print(f"uniform pruning at the targeted model's latency ({latency['targeted']:.3f}x, interpolated): "
              f"{100 * matched:.2f}%; targeted {100 * metrics['test_accuracy']:.2f}% "
              f"({100 * (metrics['test_accuracy'] - matched):+.2f} points)")


if __name__ == "__main__":
    main()
