"""Time the reference sweep's 26 prune + evaluate points with prunekit.deploy.fast_evaluate.

Usage: python scripts/time_fast_eval.py CHECKPOINT [--threads N]
Prints, per point, the prune time, the fast_evaluate time and the plain dense evaluate time (batch
10,000) and checks that both accuracies are identical.
"""

import argparse
import time

import torch

from prunekit.checkpoint import load_checkpoint
from prunekit.data import load_dataset
from prunekit.deploy import crossover_densities, fast_evaluate
from prunekit.prune import prune_model
from prunekit.training import evaluate

SPARSITIES = (0, 25, 50, 60, 70, 75, 80, 85, 90, 92.5, 95, 97.5, 99)


def seconds(fn):
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(args.checkpoint)
    model, base = ckpt.model, {k: v.clone() for k, v in ckpt.model.state_dict().items()}
    x, y = load_dataset(ckpt.config.get("dataset", "mnist"), progress=False).split("test")
    cross, calibration = seconds(crossover_densities)
    print(f"{torch.get_num_threads()} threads; crossover densities {cross} (measured once, {calibration:.2f} s)")
    totals = {"prune": 0.0, "fast": 0.0, "dense": 0.0}
    for method in ("weight", "unit"):
        for sparsity in SPARSITIES:
            model.load_state_dict(base)
            _, prune_s = seconds(lambda: prune_model(model, method, sparsity))
            fast, fast_s = seconds(lambda: fast_evaluate(model, None, x, y))
            dense, dense_s = seconds(lambda: evaluate(model, x, y, batch_size=len(x)))
            assert fast["accuracy"] == dense["accuracy"], (method, sparsity, fast, dense)
            for key, value in (("prune", prune_s), ("fast", fast_s), ("dense", dense_s)):
                totals[key] += value
            print(f"{method:6s} {sparsity:5.1f}%  prune {prune_s:.3f} s  fast_evaluate {fast_s:.3f} s  "
                  f"dense evaluate {dense_s:.3f} s  accuracy {fast['accuracy']:.4f}")
    print(f"26 points: prune {totals['prune']:.2f} s + fast_evaluate {totals['fast']:.2f} s "
          f"= {totals['prune'] + totals['fast']:.2f} s (+{calibration:.2f} s calibration once); "
          f"dense evaluate would take {totals['dense']:.2f} s")


if __name__ == "__main__":
    main()
