"""``prunekit drop-blocks``: depth pruning of a language model (whole decoder blocks removed)."""

from __future__ import annotations

import argparse

from ..hf.depth import PARTS, SELECTIONS, prune_depth
from .common import add_command, positive_int
from .lm import add_calibrated_command_options, text_dataset


def register(commands) -> None:
    parser = add_command(
        commands, "drop-blocks", help="remove whole decoder blocks of a language model (depth pruning)",
        description="Remove the --blocks decoder blocks of a Hugging Face causal language model that change their "
        "input least (angular distance between the hidden states entering and leaving each block, over "
        "calibration text after the held-out part), measure held-out perplexity before and after, and write a "
        "Hugging Face folder whose config is standard (fewer layers): stock AutoModelForCausalLM.from_pretrained "
        "loads it, no prunekit needed. Distances and the removed blocks are in its prunekit.json.\n\n"
        "Examples:\n  prunekit drop-blocks --model hf:runs/smollm2 --blocks 8 --out runs/smollm2-d8\n"
        "  prunekit drop-blocks --model hf:runs/smollm2 --blocks 6 --selection contiguous --out runs/smollm2-c6\n"
        "  prunekit drop-blocks --model hf:runs/smollm2 --blocks 8 --part attention --out runs/smollm2-a8\n\n"
        "--part attention|mlp removes only that half of --blocks blocks (the halves that move the residual stream "
        "least); no standard config describes that, so the folder is in prunekit's compacted form: prunekit "
        "(--model hf:OUT, prunekit.hf.load) reads it, stock transformers does not.",
        run=run_drop_blocks,
    )
    parser.add_argument("--model", required=True, metavar="hf:DIR", help="hf:DIR or hf:FILE.gguf")
    parser.add_argument("--blocks", type=positive_int, required=True,
                        help="how many decoder blocks to remove (with --part: how many blocks lose that half)")
    parser.add_argument("--part", choices=PARTS, default="block",
                        help="block: whole blocks (standard config); attention or mlp: that half of each chosen "
                        "block alone (He et al.; prunekit's compacted form)")
    parser.add_argument("--selection", choices=SELECTIONS, default="independent",
                        help="independent: the blocks of least distance each (ShortGPT); contiguous: the run of "
                        "--blocks consecutive blocks whose input and output are closest (Gromov et al.)")
    add_calibrated_command_options(parser, "the distances are")


def run_drop_blocks(args: argparse.Namespace) -> int:
    result = prune_depth(args.model, args.blocks, out=args.out, selection=args.selection, part=args.part,
                         dataset=text_dataset(args.dataset), calibration_batches=args.calibration_batches,
                         dtype=args.dtype, seqlen=args.seqlen, held_out=args.held_out_tokens,
                         progress=not args.quiet)
    what = "decoder blocks" if args.part == "block" else f"the {args.part} of blocks"
    form = ("" if args.part == "block" else
            " (prunekit's compacted form: read it with prunekit, --model hf:OUT or prunekit.hf.load)")
    print(f"{args.model}: removed {what} {result.removed} ({args.selection}); parameters "
          f"{result.params_dense:,} -> {result.params:,} ({100 * (1 - result.params / result.params_dense):.1f}% "
          f"fewer); held-out perplexity {result.perplexity_dense:.3f} -> {result.perplexity:.3f} -> {result.path}{form}")
    return 0
