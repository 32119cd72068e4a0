"""``prunekit bench train`` (how fast training runs here) and ``prunekit bench latency`` (inference)."""

from __future__ import annotations

import argparse
import json
import os
import platform

import torch

from ..bench import benchmark_latency, benchmark_training, format_latency
from ..bench.roofline import format_roofline, layer_roofline
from ..bench.semi_structured import semi_structured_note
from ..deploy import sparsify
from ..errors import ConfigError
from ..hf import example_tokens, load_model_or_checkpoint
from ..models import get_model
from ..prune import Pruner, removes_units, sparsity_report
from ..batches import make_inputs, resize_batch
from ..references import call, is_reference
from ..storage import atomic_write_text, check_output
from ..structure import walkable
from ..training import PRECISIONS
from .bench_generate import register_generate
from .bench_int8 import register_int8
from .common import (add_command, add_data_options, add_device_option, add_model_options, int_list, key_value,
                     name_list, positive_int, shape)
from .prune_options import add_prune_options, prune_spec_from_args


def register(commands) -> None:
    parser = commands.add_parser("bench", help="measure training or inference speed",
                                 description="Benchmarks that print measured figures.")
    sub = parser.add_subparsers(dest="bench_command", metavar="BENCH", required=True)
    train = add_command(
        sub, "train", help="seconds per epoch and samples per second of training",
        description="Time training epochs of a model on a dataset's training set and print the median "
        "seconds per epoch and samples per second.\n\nExample:\n  prunekit bench train --model mlp --epochs 3",
        run=run_bench_train,
    )
    add_model_options(train)
    train.add_argument("--epochs", type=positive_int, default=3, help="epochs to time (the median is reported)")
    train.add_argument("--batch-size", type=positive_int, default=256, help="samples per step")
    train.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: torch's choice)")
    train.add_argument("--paths", type=name_list, default=("memory", "loader"),
                       help="data paths to time: memory (in-memory tensors) and/or loader (a DataLoader)")
    train.add_argument("--precision", choices=PRECISIONS, default="fp32", help="autocast precision")
    add_device_option(train)
    add_data_options(train)
    register_latency(sub)
    register_int8(sub)
    register_generate(sub)


def run_bench_train(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    results = benchmark_training(
        args.model, model_args=dict(args.model_arg), epochs=args.epochs, batch_size=args.batch_size,
        dataset=args.dataset, data_dir=args.data_dir, paths=args.paths, device=args.device, precision=args.precision,
        progress=not args.quiet,
    )
    first = next(iter(results.values()))
    print(f"model {args.model}, batch {args.batch_size}, {first['epochs']} epochs timed per path, device "
          f"{first['device']}, precision {args.precision}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}")
    for path, result in results.items():
        print(f"{path:6s}: epoch seconds {', '.join(f'{s:.2f}' for s in result['epoch_seconds'])}; median "
              f"{result['median_epoch_seconds']:.2f} s/epoch, {result['samples_per_second']:.0f} samples/s, "
              f"{result['tflop_per_epoch']:.2f} TFLOP/epoch -> {result['gflops']:.0f} GFLOP/s")
    if {"memory", "loader"} <= set(results):
        ratio = results["memory"]["samples_per_second"] / results["loader"]["samples_per_second"]
        print(f"the DataLoader path is {ratio:.2f}x slower than the in-memory path (same model, batch and device)")
    return 0


def register_latency(sub) -> None:
    parser = add_command(
        sub, "latency", help="inference latency of dense, masked, sparse and compact versions",
        description="Measure the median latency (after a warm-up, versions interleaved) and throughput of the "
        "dense, masked (torch.nn.utils.prune), sparse (measured kernel choice), compact and compact+sparse "
        "versions of a model, printed as ratios to dense measured in the same run, with the FLOP ratio (the "
        "ideal) and the parameter ratio beside them. The model comes from --checkpoint (with --model for a "
        "checkpoint of your own model), or is built with random weights from --model; --method/--sparsity prune "
        "it first. Any model is compacted when it is traced on --example-inputs (or on random inputs of "
        "--input-shape).\n\nExamples:\n"
        "  prunekit bench latency --checkpoint runs/mlp-w95\n"
        "  prunekit bench latency --checkpoint runs/mlp --method unit --sparsity 75\n"
        "  prunekit bench latency --model mlp --method weight --sparsity 95 --threads 1\n"
        "  prunekit bench latency --model examples/models.py:small_resnet --input-shape 3,32,32 --method unit "
        "--sparsity 50 --trace",
        run=run_bench_latency,
    )
    parser.add_argument("--checkpoint", help="checkpoint folder (regular or compact), or a Hugging Face model "
                        "(hf:DIR, hf:FILE.gguf: timed on --seqlen random tokens per sample)")
    parser.add_argument("--seqlen", type=positive_int, default=128,
                        help="with a Hugging Face model: tokens per sample")
    parser.add_argument("--model", help="registered model name or FILE.py:FUNCTION: random weights (seed 0), or the "
                        "builder of --checkpoint's model")
    parser.add_argument("--example-inputs", default=None, metavar="FILE.py:FUNCTION",
                        help="a function returning one batch the model accepts (tensor, tuple or dict)")
    parser.add_argument("--trace", action="store_true",
                        help="compact by tracing the model (any architecture), not layer by layer (nn.Sequential)")
    parser.add_argument("--model-arg", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                        help="with --model: a builder argument, VALUE in JSON; repeatable")
    parser.add_argument("--sparsity", type=float, default=None, help="with --method: percent to prune")
    add_prune_options(parser, default_method=None, skip=("calibration_batches", "reconstruct"))  # no data here
    parser.add_argument("--batch-sizes", type=int_list, default=(1, 256), help="comma-separated batch sizes")
    parser.add_argument("--repeats", type=positive_int, default=None,
                        help="timed calls per version and batch size (default: 200 at batch 1, 40 at large batches)")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--input-shape", type=shape, default=None,
                        help="one sample's shape, e.g. 1,28,28 (default: the checkpoint's; with a zoo --model, MNIST's 1,28,28)")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument("--roofline", action="store_true",
                        help="also a per-layer roofline at batch 1: the bytes each linear layer reads with its chosen "
                        "kernel, the bandwidth it reaches, and the machine's read bandwidth probed in the same run")


def _model_and_mask(args: argparse.Namespace):
    """The model, its mask, one sample's shape (or ``None``) and example inputs (or ``None``)."""
    if (args.method is None) != (args.sparsity is None and args.pattern is None) or \
            (args.sparsity is not None and args.pattern is not None):
        raise ConfigError("give --method with --sparsity or --pattern (or none of them)")
    if args.method is not None:
        prune_spec_from_args(args)  # the request's rules, before any model is built
    if not args.checkpoint and not args.model:
        raise ConfigError("give --checkpoint or --model")
    if args.checkpoint:
        ckpt = load_model_or_checkpoint(args.checkpoint, model_source=args.model)
        model, mask, shape_ = ckpt.model, ckpt.mask, args.input_shape or ckpt.input_shape
        tokens = example_tokens(ckpt, args.seqlen)
    else:
        model, mask, shape_ = get_model(args.model, seed=0, **dict(args.model_arg)), None, args.input_shape
        tokens = None
    example = call(args.example_inputs, "example inputs") if args.example_inputs else tokens
    if shape_ is None and example is None:
        if args.checkpoint:
            raise ConfigError(f"{args.checkpoint} does not record its input shape; pass --input-shape or --example-inputs")
        if is_reference(args.model):
            raise ConfigError(f"--model {args.model}: pass one sample's shape (--input-shape, e.g. 3,32,32) or "
                              f"--example-inputs FILE.py:FUNCTION; a model of your own has no default input")
        shape_ = (1, 28, 28)  # the zoo models' default dataset, MNIST
    units = args.method is not None and removes_units(args.method)
    if (args.trace or (units and not walkable(model))) and example is None:
        example = make_inputs(shape_)(2)[0][0]
    if args.method is not None:
        traced = example if units and example is not None else None
        mask = Pruner(model, prune_spec_from_args(args), traced).prune(args.sparsity, mask=mask)
    return model, mask, tuple(shape_) if shape_ else None, example


def busy_warning() -> str | None:
    """A note when other processes already keep the CPUs busy (timings of multi-threaded torch then suffer)."""
    try:
        load, cpus = os.getloadavg()[0], len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None
    if load < cpus - 0.5:
        return None
    return (f"note: load average {load:.1f} on {cpus} CPUs before this run: other processes compete for the cores, "
            f"so multi-threaded timings stall and are noisy; compare with --threads 1")


def run_bench_latency(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.json:
        check_output(args.json, kind="file")
    warning = busy_warning()
    model, mask, input_shape, example = _model_and_mask(args)
    repeats = {b: args.repeats for b in args.batch_sizes} if args.repeats else None
    rows = benchmark_latency(model, mask, input_shape=input_shape, example_inputs=example,
                             batch_sizes=args.batch_sizes, repeats=repeats)
    total = sparsity_report(model, mask, example_inputs=resize_batch(example, 1) if example is not None else None,
                            input_shape=(1, *input_shape) if example is None else None).total
    print(f"{args.checkpoint or args.model}: {total.nonzero:,}/{total.params:,} Linear/Conv weights non-zero "
          f"({total.sparsity:.2f}% sparse); {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"{platform.machine()}")
    print(format_latency(rows))
    print("x dense time: median latency / dense median latency in this run (lower is faster); medians of "
          "interleaved repeats, so shared-machine noise remains")
    note = semi_structured_note(model, mask, next((p.device for p in model.parameters()), torch.device("cpu")))
    if note:
        print(note)
    if warning and torch.get_num_threads() > 1:
        print(warning)
    if args.roofline:
        runner = sparsify(model, mask, batch_sizes=(1,), input_shape=input_shape, example_inputs=example)
        print("\n" + format_roofline(layer_roofline(runner)))
    if args.json:
        atomic_write_text(args.json, json.dumps([r.to_dict() for r in rows], indent=2) + "\n")
    return 0
