"""``prunekit sensitivity``: prune each layer alone over a grid, and allocate per-layer sparsities."""

from __future__ import annotations

import argparse
import json

from ..checkpoint import checkpoint_dataset_name, load_checkpoint
from ..data import load_dataset
from ..storage import atomic_write_text, check_output, claim_output, mark_output
from ..study.points import tracing_batch
from ..plan import GRID, TARGET_KINDS, allocate, layer_sensitivity, training_tail
from ..study.report_layers import write_sensitivity
from .common import add_bn_batches_option, add_command, add_user_model_option, float_list, percentage, positive_int
from .lm import refuse_language_model
from .prune_options import add_prune_options, prune_spec_from_args


def register(commands) -> None:
    parser = add_command(
        commands, "sensitivity", help="prune each layer alone over a grid; allocate per-layer sparsities",
        description="Prune every layer (or coupled group) of a checkpoint alone to every sparsity of a grid, "
        "evaluate each on a validation slice of the training set (never the test set), and write "
        "OUT/sensitivity.json, OUT/sensitivity.csv and OUT/sensitivity.png (one curve per layer, the dense "
        "accuracy dashed). With --target, also allocate per-layer sparsities reaching that global target with "
        "the least predicted accuracy loss and write OUT/ratios.json for `prunekit prune --ratios`.\n\n"
        "Example:\n  prunekit sensitivity --checkpoint runs/mlp --method weight --target 95 --out runs/mlp-sens\n"
        "  prunekit prune --checkpoint runs/mlp --method weight --ratios runs/mlp-sens/ratios.json --out runs/mlp-w95s",
        run=run_sensitivity,
    )
    parser.add_argument("--checkpoint", required=True, help="the trained checkpoint folder")
    add_prune_options(parser, skip=SENSITIVITY_FIXED)
    parser.add_argument("--sparsities", type=float_list, default=GRID, help="comma-separated grid, percentages")
    parser.add_argument("--validation-samples", type=positive_int, default=5000,
                        help="the last N training samples are the validation slice")
    parser.add_argument("--latency-batch", type=positive_int, default=None, metavar="B",
                        help="also measure the CPU latency each point's compacted model saves at batch B "
                        "(a latency table; needed for --budget latency)")
    add_bn_batches_option(parser)
    parser.add_argument("--target", type=percentage, default=None,
                        help="allocate per-layer sparsities removing this percent of the parameters (or MACs)")
    parser.add_argument("--budget", choices=TARGET_KINDS, default="params",
                        help="what --target counts: params (weights of the analysed layers for weight pruning), macs, "
                        "or latency (percent of the dense latency saved; needs --latency-batch)")
    parser.add_argument("--data-dir", default=None, help="folder holding the dataset files (default: $PRUNEKIT_DATA)")
    parser.add_argument("--dataset", default=None, help="the dataset (default: the checkpoint's)")
    parser.add_argument("--out", required=True, help="folder for the results")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_user_model_option(parser)


SENSITIVITY_FIXED = ("scope", "include_output", "pattern", "reconstruct")
"""PruneSpec fields a sensitivity analysis fixes (every layer alone, to each sparsity of the grid)."""
SENSITIVITY_OUTPUTS = ("sensitivity.json", "sensitivity.csv", "sensitivity.png", "ratios.json")
"""What ``prunekit sensitivity`` writes into its folder."""


def run_sensitivity(args: argparse.Namespace) -> int:
    refuse_language_model(args.checkpoint, "sensitivity", "prune it with --owl for per-block sparsities "
                          "measured on the calibration text, or give per-layer --ratios to prunekit prune")
    spec = prune_spec_from_args(args)
    out = check_output(args.out, inputs=[args.checkpoint], allow_other_files=True)
    claim_output(out, "sensitivity", SENSITIVITY_OUTPUTS, earlier="sensitivity.json")  # folders from before marks
    ckpt = load_checkpoint(args.checkpoint, model_source=args.model)
    data = load_dataset(checkpoint_dataset_name(ckpt.config, args.dataset, args.checkpoint), args.data_dir,
                        progress=not args.quiet)
    validation = training_tail(data, args.validation_samples)
    curves = layer_sensitivity(ckpt.model, spec, validation, sparsities=args.sparsities,
                               example_inputs=tracing_batch(ckpt.model, spec.method, data),
                               input_shape=data.input_shape, latency_batch=args.latency_batch,
                               bn_batches=args.bn_batches, progress=not args.quiet)
    mark_output(out, "sensitivity")
    written = write_sensitivity(curves, out)
    adapted = f"; BatchNorm statistics re-estimated on {curves.bn_batches} batches before each evaluation" \
        if curves.bn_batches else ""
    print(f"dense validation accuracy {curves.dense_accuracy:.4f} on {len(validation[1])} training samples held out"
          + adapted)
    for layer in curves.layers():
        points = ", ".join(f"{r['sparsity']:g}%: {r['accuracy']:.4f}" for r in curves.curve(layer))
        print(f"  {layer}: {points}")
    if args.target is not None:
        plan = allocate(curves, args.target, args.budget)
        atomic_write_text(out / "ratios.json", json.dumps(plan, indent=2))
        written.append(out / "ratios.json")
        print(f"plan for {args.target:g}% of the {args.budget}: " + ", ".join(f"{n}: {k:g}%" for n, k in plan.items()))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
