"""Latency target vs uniform channel pruning at the same measured latency and the same fine-tuning.

Usage (after `prunekit prune ... --target-latency 0.5 --schedule finetune --finetune-epochs E --out TARGETED`):

    python scripts/bench_latency_target.py --dense runs/resnet20-fmnist --targeted runs/resnet20-lat50 \
        --data-dir ../shared/data/fashion-mnist --out runs/resnet20-uniform

It prunes the dense model uniformly (every coupled group at the same unit sparsity) at each of
``--sparsities`` and fine-tunes each with the targeted run's schedule and recipe (kept in ``OUT/uniform-<k>``
and reused by a rerun); with ``--seeds 0,1,2`` every model, the targeted plan included, is fine-tuned once
per seed (the targeted plan's other seeds in ``OUT/plan-of-<targeted folder>-seed<s>``), and with
``--finetune-epochs E`` every model, the targeted plan again too, is fine-tuned E epochs. Then it measures
every pruned model's compacted latency against the dense one in one run (``--rounds`` rounds, each
interleaving dense and pruned, the models taking turns; medians), and compares the targeted model's mean
accuracy with uniform pruning *to* the same latency (the least pruned uniform plan measuring at most the
targeted model's latency) and with the uniform curve interpolated linearly at that latency.
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


def fine_tuned(args, pruning, name: str, seed: int, **how) -> object:
    """``OUT/<name>[-seed<s>]``: the dense model pruned as ``how`` says and fine-tuned with the targeted run's
    schedule and recipe, seeded with ``seed`` (reused by a rerun)."""
    recipe = dict(pruning["recovery"]["finetune"])
    if args.finetune_epochs is not None:
        recipe["epochs"], name = args.finetune_epochs, f"{name}-e{args.finetune_epochs:g}"
    recovery = Recovery(finetune=TrainConfig(**recipe)).with_seed(seed)
    folder = Path(args.out) / (name if seed == pruning["recovery"]["finetune"]["seed"] else f"{name}-seed{seed}")
    if not (folder / "model.safetensors").is_file():
        prune_checkpoint(args.dense, method="unit", out=str(folder), data_dir=args.data_dir,
                         schedule=pruning["schedule"], recovery=recovery, progress=False, **how)
    return load_checkpoint(str(folder))


def replicates(args, targeted, pruning) -> dict[str, list]:
    """Every model's fine-tuned checkpoints, one per seed: the targeted plan (its own run for its seed)
    and the uniform plans."""
    seeds = [int(s) for s in args.seeds.split(",")]
    own = pruning["recovery"]["finetune"]["seed"]
    found = {"targeted": [targeted if s == own and args.finetune_epochs is None else
                          fine_tuned(args, pruning, f"plan-of-{Path(args.targeted).name}", s,
                                                     ratios=pruning["ratios"]) for s in seeds]}
    for sparsity in (float(s) for s in args.sparsities.split(",")):
        found[f"uniform {sparsity:g}%"] = [fine_tuned(args, pruning, f"uniform-{sparsity:g}", s, sparsity=sparsity)
                                          for s in seeds]
    for name, runs in found.items():
        print(f"  {name}: test accuracy " + ", ".join(f"{c.metrics['test_accuracy']:.4f}" for c in runs), flush=True)
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
    parser.add_argument("--finetune-epochs", type=float, default=None,
                        help="fine-tune every model (the targeted plan again too) this long instead of the targeted "
                        "run's epochs")
    parser.add_argument("--seeds", default="0", help="fine-tuning seeds: every model is fine-tuned once per seed")
    args = parser.parse_args()
    dense, targeted = load_checkpoint(args.dense), load_checkpoint(args.targeted)
    pruning, metrics = targeted.config["pruning"], targeted.metrics
    batch, example = metrics["latency_batch"], torch.randn(2, *dense.input_shape)
    runs = replicates(args, targeted, pruning)
    masks = {name: found[0].mask for name, found in runs.items()}  # the seeds share a structure
    ratios: dict[str, list[float]] = {name: [] for name in masks}
    for _ in range(args.rounds):  # the models take turns, so a slow spell hits them all
        for name, mask in masks.items():
            ratios[name].append(compact_latency_ratio(dense.model, mask, example, batch_size=batch))
    latency = {name: statistics.median(values) for name, values in ratios.items()}
    accuracy = {name: [c.metrics["test_accuracy"] for c in found] for name, found in runs.items()}
    mean = {name: statistics.mean(values) for name, values in accuracy.items()}
    spread = {name: statistics.stdev(values) if len(values) > 1 else 0.0 for name, values in accuracy.items()}
    epochs = args.finetune_epochs or pruning["recovery"]["finetune"]["epochs"]
    print(f"\nbatch {batch}; {pruning['schedule']} {epochs:g} epochs each, seeds {args.seeds}; dense test accuracy "
          f"{dense.metrics['test_accuracy']:.4f}; latency ratios: medians of {args.rounds} rounds in this run, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| model | units removed % | test accuracy % (mean ± std over seeds) | latency x dense (median) | rounds |")
    print("|---|---:|---:|---:|---|")
    for name, found in runs.items():
        print(f"| {name} | {found[0].metrics['sparsity_actual']:.1f} | {100 * mean[name]:.2f} ± {100 * spread[name]:.2f} | "
              f"{latency[name]:.3f} | {', '.join(f'{r:.3f}' for r in ratios[name])} |")
    target = metrics["latency_target"]
    met = "meets" if latency["targeted"] <= target else "MISSES"
    print(f"targeted plan {pruning['ratios']}: {met} the {target:g}x target here ({latency['targeted']:.3f}x; "
          f"{metrics['latency_ratio_measured']:.3f}x when it was pruned)")
    uniform = [name for name in runs if name != "targeted"]
    as_fast = [name for name in uniform if latency[name] <= latency["targeted"]]
    if as_fast:  # uniform pruning *to* the targeted model's latency: the least pruned uniform plan as fast
        rival = min(as_fast, key=lambda name: runs[name][0].metrics["sparsity_actual"])
        print(f"uniform pruning to the targeted model's measured latency: {rival} ({latency[rival]:.3f}x) "
              f"{100 * mean[rival]:.2f}%; targeted {100 * mean['targeted']:.2f}% "
              f"({100 * (mean['targeted'] - mean[rival]):+.2f} points, seeds' std {100 * spread['targeted']:.2f} / "
              f"{100 * spread[rival]:.2f})")
    else:
        print("no uniform plan is as fast as the targeted model here: add sparsities (--sparsities)")
    matched = interpolate([(latency[name], mean[name]) for name in uniform], latency["targeted"])
    if matched is not None:
        print(f"the uniform curve interpolated at {latency['targeted']:.3f}x: {100 * matched:.2f}% "
              f"({100 * (mean['targeted'] - matched):+.2f} points for the targeted model)")


if __name__ == "__main__":
    main()
