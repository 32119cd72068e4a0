"""``prunekit sweep``: the reference study (and its extensions)."""

from __future__ import annotations

import argparse

from ..report import write_report
from ..sweep import REFERENCE_SPARSITIES, SweepConfig, run_sweep, sweep_config_dict
from .common import add_command, add_data_options, add_train_options, key_value, train_config


def float_list(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def name_list(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def register(commands) -> None:
    parser = add_command(
        commands, "sweep", help="prune a baseline at many sparsities and report accuracy",
        description="Train (or reuse) a baseline, prune a fresh copy for every (method, sparsity), evaluate "
        "each on the full test set, and write OUT/results.csv, OUT/results.json, "
        "OUT/accuracy_vs_sparsity.png and OUT/REPORT.md. Finished points are kept; a rerun resumes.\n\n"
        "Example:\n  prunekit sweep --model mlp --methods weight,unit --out runs/reference",
        run=run_sweep_cmd,
    )
    parser.add_argument("--model", default="mlp", help="model name (see `prunekit models`)")
    parser.add_argument("--model-arg", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                        help="a model builder argument, VALUE in JSON; repeatable")
    parser.add_argument("--methods", type=name_list, default=("weight", "unit"),
                        help="comma-separated pruning methods: weight, unit")
    parser.add_argument("--sparsities", type=float_list, default=REFERENCE_SPARSITIES,
                        help="comma-separated percentages in [0, 100)")
    parser.add_argument("--scope", default="layer", help="layer or global")
    parser.add_argument("--checkpoint", default=None,
                        help="baseline checkpoint folder to prune (default: train one, or reuse the one "
                        "trained before in OUT with the same config)")
    parser.add_argument("--out", required=True, help="sweep folder")
    add_train_options(parser)
    add_data_options(parser)


def run_sweep_cmd(args: argparse.Namespace) -> int:
    config = SweepConfig(
        model=args.model, model_args=dict(args.model_arg), dataset=args.dataset, methods=args.methods,
        sparsities=args.sparsities, scope=args.scope, train=train_config(args),
    )
    result = run_sweep(config, args.out, checkpoint=args.checkpoint, data_dir=args.data_dir,
                       progress=not args.quiet)
    floor = result.dense_pass_seconds * max(1, result.points_run)
    timing = (f"{result.points_run} prune+evaluate points in {result.points_seconds:.2f} s; one dense pass over "
              f"the test set takes {result.dense_pass_seconds:.3f} s, so {result.points_run} dense passes "
              f"would take {floor:.2f} s.")
    baseline_acc = result.baseline.metrics["test_accuracy"]
    report = write_report(result.out, baseline_accuracy=baseline_acc, config=sweep_config_dict(config),
                          timing=timing)
    print(f"baseline test accuracy {baseline_acc:.4f}")
    print(timing)
    print(f"results: {result.out / 'results.csv'}, report: {report}")
    return 0
