"""``prunekit bench train`` (how fast training runs here) and ``prunekit bench latency`` (inference)."""

from __future__ import annotations

import argparse
import platform

import torch

from ..bench_train import benchmark_training
from .bench_latency_cmd import register_latency
from .common import add_command, add_data_options, add_model_options


def register(commands) -> None:
    parser = commands.add_parser("bench", help="measure training or inference speed",
                                 description="Benchmarks that print measured figures.")
    sub = parser.add_subparsers(dest="bench_command", metavar="BENCH", required=True)
    train = add_command(
        sub, "train", help="seconds per epoch and samples per second of training",
        description="Time training epochs of a model on the MNIST training set and print the median "
        "seconds per epoch and samples per second.\n\nExample:\n  prunekit bench train --model mlp --epochs 3",
        run=run_bench_train,
    )
    add_model_options(train)
    train.add_argument("--epochs", type=int, default=3, help="epochs to time (the median is reported)")
    train.add_argument("--batch-size", type=int, default=256, help="samples per step")
    train.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    add_data_options(train)
    register_latency(sub)


def run_bench_train(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    result = benchmark_training(
        args.model, model_args=dict(args.model_arg), epochs=args.epochs, batch_size=args.batch_size,
        dataset=args.dataset, data_dir=args.data_dir, progress=not args.quiet,
    )
    print(f"model {args.model}, batch {args.batch_size}, {result['epochs']} epochs timed, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, {platform.processor() or platform.machine()}")
    print(f"epoch seconds: {', '.join(f'{s:.2f}' for s in result['epoch_seconds'])}")
    print(f"median: {result['median_epoch_seconds']:.2f} s/epoch, {result['samples_per_second']:.0f} samples/s, "
          f"{result['tflop_per_epoch']:.2f} TFLOP/epoch -> {result['gflops']:.0f} GFLOP/s")
    return 0
