"""Post-training pruning of a trained checkpoint with no retraining: accuracy and pruning time per criterion.

For every criterion (magnitude, wanda, sparsegpt), every shape (sparsities and N:M patterns) and with and
without ``--reconstruct``, the checkpoint is pruned one-shot (weights, layer-wise, the classifier whole)
with ``--calibration-batches`` batches of 128 training images, and evaluated on the full test set. The
pruning time is the median of ``--repeats`` runs.

Example (the reference MLP; the README's table):
    PRUNEKIT_DATA=../shared/data/mnist python scripts/bench_posttrain.py --checkpoint runs/reference/baselines/37936a39b4fa
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from prunekit import evaluate, load_checkpoint, load_dataset, prune_model
from prunekit.prune.posttrain import PostTrainingCriterion
from prunekit.study.prune_run import checkpoint_dataset


def choose(criterion: str, args) -> object:
    """The criterion by name, sparsegpt with the block size and damping asked for."""
    if criterion != "sparsegpt":
        return criterion
    return PostTrainingCriterion("sparsegpt", block_size=args.sparsegpt_block_size, damp=args.sparsegpt_damp,
                                 progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--shapes", default="50,95,97.5,2:4", help="comma-separated sparsities or N:M patterns")
    parser.add_argument("--criteria", default="magnitude,wanda,sparsegpt")
    parser.add_argument("--calibration-batches", type=int, default=4, help="batches of 128 training samples")
    parser.add_argument("--repeats", type=int, default=3, help="timed pruning runs per row (median)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sparsegpt-block-size", type=int, default=128,
                        help="sparsegpt's columns per block (mask choice and lazy updates); the layer's width: one block")
    parser.add_argument("--sparsegpt-damp", type=float, default=0.01, help="sparsegpt's damping, of the mean diagonal")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(args.checkpoint)
    data = load_dataset(checkpoint_dataset(ckpt.config, None, args.checkpoint), args.data_dir)
    train, test = data.split("train"), data.split("test")
    dense = {k: v.clone() for k, v in ckpt.model.state_dict().items()}
    base = evaluate(ckpt.model, test)["accuracy"]
    print(f"{args.checkpoint}: dense test accuracy {100 * base:.2f}%; calibration {args.calibration_batches} x 128 "
          f"training samples; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| criterion | reconstruct | shape | sparsity % | test accuracy % | vs dense | prune seconds (median) |")
    print("|---|---|---|---:|---:|---:|---:|")
    for shape in args.shapes.split(","):
        pattern = shape if ":" in shape else None
        for criterion in args.criteria.split(","):
            for reconstruct in (False, True):
                repeats = 1 if criterion == "magnitude" and not reconstruct else args.repeats
                seconds = []
                for _ in range(repeats):
                    ckpt.model.load_state_dict(dense)
                    start = time.perf_counter()
                    mask = prune_model(ckpt.model, "weight", None if pattern else float(shape), pattern=pattern,
                                       criterion=choose(criterion, args), calibration=train, reconstruct=reconstruct,
                                       calibration_batches=args.calibration_batches)
                    seconds.append(time.perf_counter() - start)
                accuracy = evaluate(ckpt.model, test)["accuracy"]
                print(f"| {criterion} | {'yes' if reconstruct else 'no'} | {shape} | {mask.sparsity():.2f} | "
                      f"{100 * accuracy:.2f} | {100 * (accuracy - base):+.2f} | {statistics.median(seconds):.2f} |",
                      flush=True)


if __name__ == "__main__":
    main()
