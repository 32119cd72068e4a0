"""``prunekit prune`` and ``prunekit info``."""

from __future__ import annotations

import argparse

from ..checkpoint import load_checkpoint
from ..prune import METHODS, SCOPES, sparsity_report
from ..workflows import prune_checkpoint
from .common import add_command
from .recovery_options import add_recovery_options, recovery_from_args, schedule_help


def register(commands) -> None:
    parser = add_command(
        commands, "prune", help="prune a checkpoint once and save it with its mask",
        description="Prune a trained checkpoint (one-shot, or with a schedule that recovers accuracy), evaluate "
        "it on the test set, write the pruned checkpoint (weights, masks, config, metrics) and print the "
        "sparsity report.\n\nExamples:\n"
        "  prunekit prune --checkpoint runs/mlp --method weight --sparsity 90 --out runs/mlp-w90\n"
        "  prunekit prune --checkpoint runs/mlp --method unit --sparsity 90 --schedule lottery --out runs/mlp-u90\n"
        "  prunekit prune --checkpoint runs/mlp --sparsity 99 --schedule iterative --distill --out runs/mlp-w99",
        run=run_prune,
    )
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder to prune")
    parser.add_argument("--method", choices=list(METHODS), default="weight",
                        help="weight: zero the smallest-magnitude weights; unit: zero the units "
                        "(rows / conv filters) of smallest L2 norm")
    parser.add_argument("--sparsity", type=float, required=True,
                        help="percent of weights (or units) to prune, in [0, 100), e.g. 92.5")
    parser.add_argument("--scope", choices=list(SCOPES), default="layer",
                        help="layer: every pruned tensor reaches the sparsity; global: one ranking across them")
    parser.add_argument("--layers", default=None,
                        help="comma-separated fnmatch patterns of module names to prune "
                        "(default: every Linear/Conv2d; the classifier is never unit-pruned)")
    parser.add_argument("--schedule", default="oneshot", help="pruning schedule; " + schedule_help())
    parser.add_argument("--out", required=True, help="folder for the pruned checkpoint")
    parser.add_argument("--data-dir", default=None, help="folder holding the dataset files (default: $PRUNEKIT_DATA)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_recovery_options(parser)

    info = add_command(commands, "info", help="print the sparsity report of a checkpoint",
                       description="Print a checkpoint's model, metrics and per-layer sparsity report.\n\n"
                       "Example:\n  prunekit info runs/mlp-w90", run=run_info)
    info.add_argument("checkpoint", help="checkpoint folder")


def run_prune(args: argparse.Namespace) -> int:
    layers = [p.strip() for p in args.layers.split(",") if p.strip()] if args.layers else None
    result = prune_checkpoint(args.checkpoint, method=args.method, sparsity=args.sparsity, scope=args.scope,
                              layers=layers, out=args.out, data_dir=args.data_dir, progress=not args.quiet,
                              schedule=args.schedule, recovery=recovery_from_args(args))
    print(sparsity_report(result.model).format_table())
    dense = result.metrics.get("dense_test_accuracy")
    dense_text = f" (dense {dense:.4f})" if dense is not None else ""
    m = result.metrics
    cost = f", {m['train_epochs']:g} epochs of training in {m['train_seconds']:.1f} s" if m["train_epochs"] else ""
    print(f"\n{args.method} pruning at {args.sparsity:g}% ({args.scope}, {args.schedule}{cost}): test accuracy "
          f"{m['test_accuracy']:.4f}{dense_text} -> {result.path}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    ckpt = load_checkpoint(args.checkpoint)
    model = ckpt.config.get("model", {})
    name = model.get("name") or f"compact ({model.get('architecture', 'user model')})"
    print(f"checkpoint {ckpt.path}: model {name} {model.get('args') or ''}".rstrip())
    pruning = ckpt.config.get("pruning")
    if pruning:
        shown = ("method", "sparsity", "scope", "schedule", "layers", "source")
        print("pruning: " + ", ".join(f"{k}={pruning[k]}" for k in shown if pruning.get(k) is not None))
    metrics = {k: v for k, v in ckpt.metrics.items() if not isinstance(v, (list, dict))}
    print("metrics: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()))
    print()
    print(sparsity_report(ckpt.model).format_table())
    return 0
