"""``prunekit bench int8``: int8 inference (ONNX Runtime's integer kernels) of checkpoints against the fp32
dense model, latency and test accuracy in one run."""

from __future__ import annotations

import argparse
import platform
import tempfile

import torch

from ..bench.int8 import Int8Model, int8_accuracy, int8_latency
from ..checkpoint import checkpoint_dataset_name
from ..data import load_dataset
from ..errors import ConfigError
from ..hf import LMCheckpoint, load_model_or_checkpoint
from ..training import evaluate
from .common import add_command, int_list, positive_int


def register_int8(sub) -> None:
    parser = add_command(
        sub, "int8", help="int8 inference (ONNX Runtime) against fp32: latency and test accuracy",
        description="Quantize each checkpoint's weights to int8 per output channel (symmetric: pruned weights stay "
        "zero) and run it on ONNX Runtime's integer kernels; time it, interleaved, against the first checkpoint's "
        "fp32 model in PyTorch, at each batch size, and evaluate every version on the test set. A compressed file "
        "(model.pkz) is a checkpoint too.\n\nExample:\n"
        "  prunekit bench int8 --checkpoint runs/mlp runs/mlp-p90 --batch-sizes 1,256",
        run=run_bench_int8,
    )
    parser.add_argument("--checkpoint", nargs="+", required=True,
                        help="checkpoints: the first is the fp32 reference (the dense model), each is also run in int8")
    parser.add_argument("--batch-sizes", type=int_list, default=(1, 256), help="comma-separated batch sizes")
    parser.add_argument("--repeats", type=positive_int, default=50, help="timed calls per version and batch size")
    parser.add_argument("--threads", type=positive_int, default=None, help="threads (default: torch's choice)")
    parser.add_argument("--model", default=None, metavar="FILE.py:FUNCTION",
                        help="for checkpoints of your own model: the FILE.py:FUNCTION they were built with")
    parser.add_argument("--data-dir", default=None, help="folder holding the dataset files (default: $PRUNEKIT_DATA)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run_bench_int8(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    checkpoints = [load_model_or_checkpoint(c, model_source=args.model) for c in args.checkpoint]
    if any(isinstance(c, LMCheckpoint) for c in checkpoints):
        raise ConfigError("bench int8 runs image models; language models are not exported to ONNX yet")
    shape = checkpoints[0].input_shape
    if shape is None:
        raise ConfigError(f"{args.checkpoint[0]} does not record its input shape")
    test = load_dataset(checkpoint_dataset_name(checkpoints[0].config, None, args.checkpoint[0]), args.data_dir,
                        progress=not args.quiet).split("test")
    folder = tempfile.mkdtemp(prefix="prunekit-int8-")
    sessions = {f"int8 {name}": Int8Model.build(c.model, shape, f"{folder}/{i}") for i, (name, c) in
                enumerate(zip(args.checkpoint, checkpoints))}
    rows = int8_latency(checkpoints[0].model, sessions, shape, args.batch_sizes, args.repeats)
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}, {platform.machine()}; fp32 = "
          f"{args.checkpoint[0]} in PyTorch; int8 = ONNX Runtime dynamic quantization (int8 weights per channel, "
          f"uint8 activations)")
    print(f"{'version':40s} {'batch':>5s} {'ms':>9s} {'x fp32':>7s}")
    for row in rows:
        print(f"{row['version']:40s} {row['batch']:>5d} {row['ms']:>9.3f} {row['ratio']:>7.2f}")
    print(f"\n{'version':40s} {'test accuracy':>13s} {'int8 zeros':>11s}")
    print(f"{'fp32 ' + args.checkpoint[0]:40s} {evaluate(checkpoints[0].model, test)['accuracy']:>13.4f}")
    for name, session in sessions.items():
        print(f"{name:40s} {int8_accuracy(session, *test):>13.4f} {session.zero_weights / session.weights:>10.1%}")
    return 0
