"""Latency target vs uniform channel pruning at the same measured latency and the same fine-tuning.

Usage (after `prunekit prune ... --target-latency 0.5 --schedule finetune --finetune-epochs E --out TARGETED`):

    python scripts/bench_latency_target.py --dense runs/resnet20-fmnist --targeted runs/resnet20-lat50 \
        --data-dir ../shared/data/fashion-mnist --out runs/resnet20-uniform-matched

It finds the uniform sparsity (every coupled group alike) whose compacted model measures the targeted
model's latency ratio (bisection on measured latency), prunes and fine-tunes it with the targeted run's
schedule and epochs, then measures both pruned models against the dense one in one run and prints
accuracy and latency side by side.
"""

from __future__ import annotations

import argparse
import copy
import statistics

import torch

from prunekit.bench.compact_latency import compact_latency_ratio
from prunekit.checkpoint import load_checkpoint
from prunekit.prune import prune_model
from prunekit.schedules import Recovery
from prunekit.study import prune_checkpoint
from prunekit.training import TrainConfig


def measured_ratio(model, mask, example, batch, repeats=3) -> float:
    return statistics.median(compact_latency_ratio(model, mask, example, batch_size=batch) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dense", required=True)
    parser.add_argument("--targeted", required=True)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    dense, targeted = load_checkpoint(args.dense), load_checkpoint(args.targeted)
    pruning, metrics = targeted.config["pruning"], targeted.metrics
    batch = metrics["latency_batch"]
    shape = dense.input_shape
    example = torch.randn(2, *shape)
    goal = measured_ratio(dense.model, targeted.mask, example, batch)
    low, high = 0.0, 90.0
    for _ in range(7):  # the smallest uniform sparsity measuring at most the targeted model's latency
        middle = (low + high) / 2
        mask = prune_model(copy.deepcopy(dense.model), "unit", middle, example_inputs=example)
        if measured_ratio(dense.model, mask, example, batch) <= goal:
            high = middle
        else:
            low = middle
    sparsity = round(high, 2)
    recovery = Recovery(finetune=TrainConfig(**pruning["recovery"]["finetune"]))  # the targeted run's recipe
    epochs = recovery.finetune.epochs
    uniform = prune_checkpoint(args.dense, method="unit", sparsity=sparsity, out=args.out, data_dir=args.data_dir,
                               schedule=pruning["schedule"], recovery=recovery, progress=False)
    ratios = {name: measured_ratio(dense.model, mask, example, batch, repeats=5)
              for name, mask in (("targeted", targeted.mask), ("uniform", load_checkpoint(args.out).mask))}
    print(f"batch {batch}; {pruning['schedule']} for {epochs:g} epochs each; dense test accuracy "
          f"{dense.metrics['test_accuracy']:.4f}")
    print(f"latency target {metrics['latency_target']:g}x: plan {pruning['ratios']}")
    print(f"  targeted: test accuracy {metrics['test_accuracy']:.4f}, latency {ratios['targeted']:.3f}x "
          f"(measured at pruning time: {metrics['latency_ratio_measured']:.3f}x)")
    print(f"  uniform {sparsity:g}% of every group: test accuracy {uniform.metrics['test_accuracy']:.4f}, "
          f"latency {ratios['uniform']:.3f}x")


if __name__ == "__main__":
    main()
