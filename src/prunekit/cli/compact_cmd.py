"""``prunekit compact`` and ``prunekit export``: make pruning real (smaller models and files)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..checkpoint import WEIGHTS_FILE
from ..compact_io import load_any_checkpoint, save_compact
from ..errors import ConfigError
from ..prune.compact import compact
from .common import add_command

FORMATS = ("sparse", "compact", "onnx")


def shape(text: str) -> tuple[int, ...]:
    """Parse ``"1,28,28"`` into ``(1, 28, 28)``."""
    try:
        dims = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        dims = ()
    if not dims or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive sizes such as 1,28,28, got {text!r}")
    return dims


def register(commands) -> None:
    parser = add_command(
        commands, "compact", help="remove dead units: a smaller dense model of standard layers",
        description="Physically remove the dead units of a pruned checkpoint (rows, filters, BatchNorm channels and "
        "the matching inputs of the next layer) and write a compact checkpoint (model.safetensors, "
        "architecture.json, config.json). Prints what happened to each layer, sizes, and the largest output "
        "difference from the masked model on a random batch.\n\nExample:\n"
        "  prunekit compact --checkpoint runs/mlp-u75 --out runs/mlp-u75-compact",
        run=run_compact,
    )
    parser.add_argument("--checkpoint", required=True, help="pruned checkpoint folder")
    parser.add_argument("--out", required=True, help="folder for the compact checkpoint")
    parser.add_argument("--input-shape", type=shape, default=(1, 28, 28), help="one sample's shape, for the check")

    export = add_command(
        commands, "export", help="write a compressed file: sparse, compact or ONNX",
        description="Write a pruned checkpoint as a compressed file and print its size against the dense fp32 "
        "safetensors file.\n  sparse:  one safetensors file, each tensor as CSR, CSR with 8-bit relative indices, "
        "bitmask + values or dense, whichever is smallest (load with prunekit.export.load_sparse)\n"
        "  compact: a compact checkpoint folder (as `prunekit compact`)\n"
        "  onnx:    the compact model as ONNX, checked against onnxruntime\n\nExample:\n"
        "  prunekit export --checkpoint runs/mlp-w95 --format sparse --fp16 --out mlp-w95.safetensors",
        run=run_export,
    )
    export.add_argument("--checkpoint", required=True, help="checkpoint folder (regular or compact)")
    export.add_argument("--format", required=True, choices=FORMATS, help="what to write")
    export.add_argument("--out", required=True, help="file (sparse, onnx) or folder (compact) to write")
    export.add_argument("--fp16", action="store_true", help="sparse only: store values as fp16 (lossy)")
    export.add_argument("--compact", action="store_true",
                        help="sparse only: remove dead units first (the file then holds the compact architecture)")
    export.add_argument("--input-shape", type=shape, default=(1, 28, 28), help="one sample's shape")


def dense_bytes(checkpoint: str) -> int:
    """Size of the checkpoint's dense fp32 safetensors file."""
    return (Path(checkpoint) / WEIGHTS_FILE).stat().st_size


def compact_checked(checkpoint: str, input_shape) -> tuple:
    model, mask, config, metrics = load_any_checkpoint(checkpoint)
    if not isinstance(model, torch.nn.Sequential):
        raise ConfigError(f"{checkpoint}: compaction needs an nn.Sequential model, got {type(model).__name__}")
    result = compact(model, mask)
    x = torch.randn(64, *input_shape)
    with torch.inference_mode():
        diff = (result.model(x) - model.eval()(x)).abs().max().item()
    return result, diff, config, metrics


def run_compact(args: argparse.Namespace) -> int:
    result, diff, config, metrics = compact_checked(args.checkpoint, args.input_shape)
    out = save_compact(args.out, result.model, report=result.report, source=config.get("model"), metrics=metrics)
    print(result.report.format_table())
    before, after = dense_bytes(args.checkpoint), (out / WEIGHTS_FILE).stat().st_size
    print(f"\n{WEIGHTS_FILE}: {before:,} -> {after:,} bytes ({before / after:.2f}x smaller); "
          f"max |compact - masked| output difference on a random batch: {diff:.2e}")
    if result.report.skipped:
        print(f"not compacted: {', '.join(r.name for r in result.report.skipped)} (see the note column)")
    print(f"-> {out}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    if args.format != "sparse" and (args.fp16 or args.compact):
        raise ConfigError("--fp16 and --compact apply to --format sparse only")
    from . import export_cmd

    return export_cmd.EXPORTERS[args.format](args)
