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
from .common import add_bn_batches_option, add_command, float_list, percentage, positive_int
from ..errors import ConfigError
from ..hf import is_hf_folder, is_hf_reference
from ..hf.sensitivity import LM_GRID, block_sensitivity, write_block_sensitivity
from .lm import add_lm_options, text_dataset
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
        "  prunekit prune --checkpoint runs/mlp --method weight --ratios runs/mlp-sens/ratios.json --out runs/mlp-w95s\n\n"
        "A pretrained language model (--model hf:DIR or hf:FILE.gguf): every decoder block's weights pruned alone "
        "(default grid " + ", ".join(f"{k:g}" for k in LM_GRID) + "), held-out perplexity on the text (--dataset "
        "text:..., default text:pydoc); --target allocates per-block sparsities by the least rise of the log "
        "perplexity:\n"
        "  prunekit sensitivity --model hf:runs/smollm2 --target 50 --out runs/smollm2-sens\n"
        "  prunekit prune --model hf:runs/smollm2 --ratios runs/smollm2-sens/ratios.json --out runs/smollm2-w50s",
        run=run_sensitivity,
    )
    parser.add_argument("--checkpoint", default=None, help="the trained checkpoint folder (or --model hf:DIR)")
    add_prune_options(parser, skip=SENSITIVITY_FIXED)
    parser.add_argument("--sparsities", type=float_list, default=None,
                        help="comma-separated grid, percentages (default " + ", ".join(f"{k:g}" for k in GRID)
                        + "; " + ", ".join(f"{k:g}" for k in LM_GRID) + " for a language model)")
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
    parser.add_argument("--model", default=None, metavar="hf:DIR | FILE.py:FUNCTION",
                        help="hf:DIR or hf:FILE.gguf: a pretrained language model, analysed block by block; or, for a "
                        "checkpoint of your own model, the FILE.py:FUNCTION it was built with (a checkpoint never "
                        "imports code by itself)")
    add_lm_options(parser)


SENSITIVITY_FIXED = ("scope", "include_output", "pattern", "reconstruct")
"""PruneSpec fields a sensitivity analysis fixes (every layer alone, to each sparsity of the grid)."""
SENSITIVITY_OUTPUTS = ("sensitivity.json", "sensitivity.csv", "sensitivity.png", "ratios.json")
"""What ``prunekit sensitivity`` writes into its folder."""


def run_sensitivity(args: argparse.Namespace) -> int:
    if is_hf_reference(args.model) or is_hf_reference(args.checkpoint) or is_hf_folder(args.checkpoint):
        return run_sensitivity_lm(args)
    if not args.checkpoint:
        raise ConfigError("give the trained checkpoint (--checkpoint DIR) or a language model (--model hf:DIR)")
    spec = prune_spec_from_args(args)
    out = check_output(args.out, inputs=[args.checkpoint], allow_other_files=True)
    claim_output(out, "sensitivity", SENSITIVITY_OUTPUTS, earlier="sensitivity.json")  # folders from before marks
    ckpt = load_checkpoint(args.checkpoint, model_source=args.model)
    data = load_dataset(checkpoint_dataset_name(ckpt.config, args.dataset, args.checkpoint), args.data_dir,
                        progress=not args.quiet)
    validation = training_tail(data, args.validation_samples)
    curves = layer_sensitivity(ckpt.model, spec, validation, sparsities=args.sparsities or GRID,
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
    written += write_plan(curves, args, out)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def write_plan(curves, args: argparse.Namespace, out) -> list:
    """With ``--target``: the allocated plan into ``OUT/ratios.json`` (printed); the paths written."""
    if args.target is None:
        return []
    plan = allocate(curves, args.target, args.budget)
    atomic_write_text(out / "ratios.json", json.dumps(plan, indent=2))
    print(f"plan for {args.target:g}% of the {args.budget}: " + ", ".join(f"{n}: {k:g}%" for n, k in plan.items()))
    return [out / "ratios.json"]


def run_sensitivity_lm(args: argparse.Namespace) -> int:
    """``prunekit sensitivity --model hf:DIR``: block curves of held-out perplexity (:func:`block_sensitivity`)."""
    if args.checkpoint and args.model:
        raise ConfigError("give --checkpoint or --model hf:DIR, not both: a Hugging Face folder is the checkpoint")
    reference = args.model or (args.checkpoint if is_hf_reference(args.checkpoint) else f"hf:{args.checkpoint}")
    if args.budget != "params" or args.latency_batch:
        raise ConfigError("a language model's block sensitivity allocates a parameter budget (--budget params); "
                          "MACs and latency are not measured per block")
    spec = prune_spec_from_args(args)
    dataset = text_dataset(args.dataset)
    out = check_output(args.out, inputs=[reference.removeprefix("hf:")], allow_other_files=True)
    claim_output(out, "sensitivity", SENSITIVITY_OUTPUTS, earlier="sensitivity.json")
    curves = block_sensitivity(reference, spec, args.sparsities or LM_GRID, dataset=dataset, dtype=args.dtype,
                               seqlen=args.seqlen, held_out=args.held_out_tokens, progress=not args.quiet)
    mark_output(out, "sensitivity")
    written = write_block_sensitivity(curves, out, f"{reference}: held-out perplexity ({dataset}, windows of "
                                      f"{args.seqlen}) with one block pruned")
    print(f"{reference}: dense held-out perplexity {curves.dense_accuracy:.3f} ({dataset}, windows of {args.seqlen})")
    for layer in curves.layers():
        points = ", ".join(f"{r['sparsity']:g}%: {r['perplexity']:.3f}" for r in curves.curve(layer))
        print(f"  {layer}: {points}")
    written += write_plan(curves, args, out)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
