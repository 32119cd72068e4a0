"""``prunekit sweep``: the reference study (and its extensions)."""

from __future__ import annotations

import argparse

import torch

from ..prune import METHODS
from ..study import REFERENCE_SPARSITIES, SweepConfig, run_sweep, sweep_config_dict, write_report
from ..study.report_schedules import training_spent
from .common import (add_command, add_data_options, add_device_option, add_model_options, add_train_options,
                     float_list, name_list, train_config)
from .recovery import add_recovery_options, recovery_from_args, schedule_help


def register(commands) -> None:
    parser = add_command(
        commands, "sweep", help="prune a baseline at many sparsities and report accuracy",
        description="Train (or reuse) a baseline, prune a fresh copy for every (method, sparsity), evaluate "
        "each on the full test set, and write OUT/results.csv, OUT/results.json, "
        "OUT/accuracy_vs_sparsity.png and OUT/REPORT.md. Finished points are kept; a rerun resumes. "
        "Sparsity is over the pruned layers; the output layer is left whole unless --include-output.\n\n"
        "Example:\n  prunekit sweep --model mlp --methods weight,unit --out runs/reference\n"
        "  prunekit sweep --schedules oneshot,iterative,gradual,lottery --out runs/recovery\n"
        "  prunekit sweep --checkpoint runs/mlp --out runs/mlp-sweep   # the checkpoint's model and dataset\n\n"
        "With several schedules, OUT/accuracy_vs_sparsity_<method>.png draws one line per schedule, and "
        "results record the epochs and seconds of training spent per point (cumulative for chained "
        "schedules, which checkpoint every level under OUT/chains/ and resume after an interruption).",
        run=run_sweep_cmd,
    )
    add_model_options(parser, default=None)
    parser.add_argument("--methods", type=name_list, default=tuple(METHODS.names()),
                        help="comma-separated pruning methods: " + ", ".join(METHODS.names()))
    parser.add_argument("--sparsities", type=float_list, default=REFERENCE_SPARSITIES,
                        help="comma-separated percentages in [0, 100)")
    parser.add_argument("--flop-reductions", type=float_list, default=(),
                        help="comma-separated MAC reduction factors (e.g. 1.5,2,3) to use as the levels instead "
                        "of --sparsities: each one's sparsity is found on the baseline (one method only)")
    parser.add_argument("--scope", default="layer",
                        help="layer or global, or one per method, e.g. weight=global,unit=layer")
    parser.add_argument("--schedules", type=name_list, default=("oneshot",),
                        help="comma-separated pruning schedules; a name ending in +distill distils in that "
                        "series only (e.g. iterative,iterative+distill), one ending in @CRITERION ranks with "
                        "that criterion (e.g. finetune@l2,finetune@taylor,finetune@random; see `prunekit "
                        "criteria`); " + schedule_help())
    parser.add_argument("--layers", type=name_list, default=None,
                        help="comma-separated fnmatch patterns of module names to prune (default: all prunable "
                        "layers but the output layer)")
    parser.add_argument("--include-output", action="store_true",
                        help="weight pruning: prune the output layer (classifier) too")
    parser.add_argument("--calibration-batches", type=int, default=32,
                        help="batches of 128 training samples a data-driven criterion (taylor, wanda, sparsegpt) or "
                        "--reconstruct reads per pruning step")
    parser.add_argument("--reconstruct", action="store_true",
                        help="weight pruning: re-solve each layer's remaining weights so its outputs on the "
                        "calibration batches match the unpruned layer's (every series)")
    parser.add_argument("--no-measure", action="store_true",
                        help="skip measuring each point's compressed file size and CPU latency ratios")
    parser.add_argument("--checkpoint", default=None,
                        help="baseline checkpoint folder to prune; its model and dataset are used (default: train "
                        "one, or reuse the one trained before in OUT with the same config)")
    parser.add_argument("--out", required=True, help="sweep folder")
    add_train_options(parser)
    add_recovery_options(parser)
    add_device_option(parser)
    add_data_options(parser, default=None)


def run_sweep_cmd(args: argparse.Namespace) -> int:
    config = SweepConfig(
        model=args.model, model_args=dict(args.model_arg), dataset=args.dataset, methods=args.methods,
        sparsities=args.sparsities, scope=args.scope, train=train_config(args), schedules=args.schedules,
        recovery=recovery_from_args(args), layers=args.layers, include_output=args.include_output,
        flop_reductions=args.flop_reductions, calibration_batches=args.calibration_batches,
        reconstruct=args.reconstruct,
    )
    result = run_sweep(config, args.out, checkpoint=args.checkpoint, data_dir=args.data_dir,
                       progress=not args.quiet, measure=not args.no_measure, device=args.device)
    timing = timing_text(result)
    baseline_acc = result.baseline.metrics["test_accuracy"]
    report = write_report(result.out, baseline_accuracy=baseline_acc, config=sweep_config_dict(result.config),
                          timing=timing)
    print(f"baseline {result.config.model} on {result.config.dataset}: test accuracy {baseline_acc:.4f}")
    if result.config.flop_reductions:
        print("levels: " + ", ".join(f"{r:g}x fewer MACs = {k:g}% sparsity"
                                     for r, k in zip(result.config.flop_reductions, result.config.sparsities)))
    print(timing)
    print(f"results: {result.out / 'results.csv'}, report: {report}")
    return 0


def timing_text(result) -> str:
    """The sweep's timing: one-shot points beside the floor of one dense test-set pass each;
    with schedules that train, the training the folder's points cost."""
    floor = result.dense_pass_seconds * max(1, result.points_run)
    epochs, seconds = training_spent(result.points)
    what = "prune+evaluate points" if not epochs else "points (prune, recover, evaluate)"
    text = (f"{result.points_run} {what} in {result.points_seconds:.2f} s; one dense pass over the test set "
            f"takes {result.dense_pass_seconds:.3f} s, so {result.points_run} dense passes would take {floor:.2f} s.")
    if result.measure_seconds:
        text += (f" Measuring file sizes and latencies took another {result.measure_seconds:.2f} s "
                 f"({torch.get_num_threads()} threads).")
    if epochs:
        text += f" The folder's points were trained for {epochs:.1f} epochs in {seconds:.0f} s in total."
    return text
