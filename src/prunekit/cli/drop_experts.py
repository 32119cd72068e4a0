"""``prunekit drop-experts``: expert pruning of a mixture-of-experts language model."""

from __future__ import annotations

import argparse

from ..hf.experts import prune_experts
from .common import add_command, positive_int
from .lm import add_calibrated_command_options, text_dataset


def register(commands) -> None:
    parser = add_command(
        commands, "drop-experts", help="remove the least salient experts of a mixture-of-experts language model",
        description="Remove --experts experts of every mixture-of-experts layer of a Hugging Face causal language "
        "model, those of least REAP saliency (the router weight times the norm of the expert's output, averaged "
        "over the calibration tokens routed to it), with their router rows; the router still picks its top-k of "
        "the experts kept. Held-out perplexity is measured before and after; the folder's config is standard "
        "(fewer experts): stock AutoModelForCausalLM.from_pretrained loads it. Saliencies are in its "
        "prunekit.json.\n\nExample:\n  prunekit drop-experts --model hf:runs/moe --experts 4 --out runs/moe-e4",
        run=run_drop_experts,
    )
    parser.add_argument("--model", required=True, metavar="hf:DIR", help="hf:DIR or hf:FILE.gguf")
    parser.add_argument("--experts", type=positive_int, required=True, help="experts to remove from every layer")
    add_calibrated_command_options(parser, "the saliencies are")


def run_drop_experts(args: argparse.Namespace) -> int:
    result = prune_experts(args.model, args.experts, out=args.out, dataset=text_dataset(args.dataset),
                           calibration_batches=args.calibration_batches, dtype=args.dtype, seqlen=args.seqlen,
                           held_out=args.held_out_tokens, progress=not args.quiet)
    print(f"{args.model}: removed {args.experts} experts of each layer; parameters {result.params_dense:,} -> "
          f"{result.params:,} ({100 * (1 - result.params / result.params_dense):.1f}% fewer); held-out perplexity "
          f"{result.perplexity_dense:.3f} -> {result.perplexity:.3f} -> {result.path}")
    return 0
