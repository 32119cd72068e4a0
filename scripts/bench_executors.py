"""Wall time of one sweep on each executor (local, processes, ray), as ratios to the local executor.

Every run sweeps the same checkpoint into a fresh folder, so nothing is resumed, and its wall time counts
everything a user waits for: starting worker processes or a single-machine Ray cluster, loading the data
in every worker, the points, and (unless --no-measure) measuring each point's file size and latency.
The executors take turns, --repeats times; the medians are compared. The points' accuracies are checked
equal across executors.

Example (the reference 26-point sweep; the README's table):
    PRUNEKIT_DATA=../shared/data/mnist python scripts/bench_executors.py --checkpoint runs/reference/baselines/37936a39b4fa
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

from prunekit.study import REFERENCE_SPARSITIES, SweepConfig, make_executor, run_sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--executors", default="local,processes,ray")
    parser.add_argument("--workers", type=int, default=2, help="workers of the processes and ray executors")
    parser.add_argument("--schedules", default="oneshot")
    parser.add_argument("--finetune-epochs", type=float, default=None, help="epochs of a finetune schedule")
    parser.add_argument("--no-measure", action="store_true", help="skip measuring file sizes and latencies")
    parser.add_argument("--cpus-per-job", type=int, default=None,
                        help="torch threads of every job, the local executor's too (default: all cores locally, 1 in workers)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    config = SweepConfig(methods=("weight", "unit"), sparsities=REFERENCE_SPARSITIES,
                         schedules=tuple(args.schedules.split(",")))
    if args.finetune_epochs is not None:
        from dataclasses import replace

        config = replace(config, recovery=replace(config.recovery, finetune=replace(config.recovery.finetune,
                                                                                    epochs=args.finetune_epochs)))
    names = args.executors.split(",")
    seconds: dict[str, list[float]] = {name: [] for name in names}
    accuracies: dict[str, list[float]] = {}
    described: dict[str, str] = {}
    points = 0
    for _ in range(args.repeats):
        for name in names:
            executor = make_executor(name, workers=None if name == "local" else args.workers,
                                     cpus_per_job=args.cpus_per_job)
            with tempfile.TemporaryDirectory() as out:
                started = time.perf_counter()
                result = run_sweep(config, out, checkpoint=args.checkpoint, data_dir=args.data_dir, progress=False,
                                   measure=not args.no_measure, executor=executor)
                seconds[name].append(time.perf_counter() - started)
            points = result.points_run
            accuracies[name] = [p["test_accuracy"] for p in result.points]
            described[name] = result.executor
            print(f"  {name}: {seconds[name][-1]:.2f} s ({result.executor})", flush=True)
    base = statistics.median(seconds[names[0]])
    print(f"\n{points} points ({', '.join(config.schedules)}; weight and unit x {len(config.sparsities)} sparsities"
          f"{'' if args.no_measure else ', measured'}), {os.cpu_count()} CPUs, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads here); medians of {args.repeats}")
    print(f"| executor | wall s (median) | runs | x {names[0]} |")
    print("|---|---:|---|---:|")
    for name in names:
        runs = ", ".join(f"{s:.2f}" for s in seconds[name])
        print(f"| {described[name]} | {statistics.median(seconds[name]):.2f} | {runs} | "
              f"{statistics.median(seconds[name]) / base:.2f} |")
    groups: list[list[str]] = []
    for name in names:
        group = next((g for g in groups if accuracies[g[0]] == accuracies[name]), None)
        group.append(name) if group else groups.append([name])
    print("executors whose points have identical test accuracies: "
          + "; ".join(" = ".join(group) for group in groups)
          + ("" if len(groups) == 1 else " (jobs with other torch thread counts sum floats in another order)"))


if __name__ == "__main__":
    main()
