"""``prunekit info``: a checkpoint's model, metrics and per-layer sparsity report."""

from __future__ import annotations

import argparse

from ..hf import load_model_or_checkpoint
from ..prune import sparsity_report
from .common import add_command, add_user_model_option


def register(commands) -> None:
    info = add_command(commands, "info", help="print the sparsity report of a checkpoint",
                       description="Print a checkpoint's model, metrics and per-layer sparsity report.\n\n"
                       "Examples:\n  prunekit info runs/mlp-w90\n  prunekit info hf:runs/smollm2-w50", run=run_info)
    info.add_argument("checkpoint", help="checkpoint folder, or a Hugging Face model: hf:DIR or hf:FILE.gguf")
    add_user_model_option(info)


def run_info(args: argparse.Namespace) -> int:
    ckpt = load_model_or_checkpoint(args.checkpoint, model_source=args.model)
    model = ckpt.config.get("model", {})
    name = model.get("name") or model.get("source") or f"compact ({model.get('architecture', 'user model')})"
    print(f"checkpoint {ckpt.path}: model {name} {model.get('args') or ''}".rstrip())
    pruning = ckpt.config.get("pruning")
    if isinstance(pruning, dict):
        shown = ("method", "criterion", "sparsity", "pattern", "scope", "schedule", "layers", "include_output",
                 "source", "dataset", "calibration")
        print("pruning: " + ", ".join(f"{k}={pruning[k]}" for k in shown if pruning.get(k) not in (None, False)))
    if model.get("pruned_from"):
        print(f"pruned from {model['pruned_from']} (content digest {model.get('pruned_from_digest')})")
    metrics = {k: v for k, v in ckpt.metrics.items() if not isinstance(v, (list, dict))}
    print("metrics: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()))
    print()
    shape = ckpt.input_shape
    print(sparsity_report(ckpt.model, ckpt.mask, input_shape=(1, *shape) if shape else None).format_table())
    return 0
