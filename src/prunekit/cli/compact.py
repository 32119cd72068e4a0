"""``prunekit compact``: remove dead units, giving a smaller dense model (a compact checkpoint)."""

from __future__ import annotations

import argparse

from .common import add_command
from .export import add_export_inputs, run_exporter


def register(commands) -> None:
    parser = add_command(
        commands, "compact", help="remove dead units: a smaller dense model of standard layers",
        description="Physically remove the dead units of a pruned checkpoint (rows, filters, BatchNorm channels and "
        "the matching inputs of the next layer) and write a compact checkpoint (model.safetensors, "
        "architecture.json, config.json). Prints what happened to each layer, sizes, and the largest output "
        "difference from the masked model on a random batch. Same as `prunekit export --format compact`.\n\n"
        "Example:\n  prunekit compact --checkpoint runs/mlp-u75 --out runs/mlp-u75-compact",
        run=run_compact,
    )
    parser.add_argument("--checkpoint", required=True, help="pruned checkpoint folder")
    parser.add_argument("--out", required=True, help="folder for the compact checkpoint")
    add_export_inputs(parser)


def run_compact(args: argparse.Namespace) -> int:
    args.format, args.fp16, args.compact = "compact", False, False
    return run_exporter(args)
