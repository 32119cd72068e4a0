"""``prunekit eval``: held-out perplexity of a language model (a Hugging Face folder or GGUF file)."""

from __future__ import annotations

import argparse
import json

from ..data.text import DEFAULT
from ..hf import held_out_perplexity
from ..storage import atomic_write_text, check_output
from ..storage.tensors import load_tensors
from .common import add_command
from .lm import add_lm_options


def register(commands) -> None:
    parser = add_command(
        commands, "eval", help="held-out perplexity of a language model",
        description="Measure the perplexity of a causal language model on the held-out part of a text: its "
        "first --held-out-tokens tokens, in non-overlapping windows of --seqlen tokens (the protocol of the "
        "SparseGPT and Wanda code). The same tokens `prunekit prune --model hf:DIR` measures.\n\n"
        "Examples:\n  prunekit eval --model hf:runs/smollm2\n"
        "  prunekit eval --model hf:runs/smollm2-w50 --dataset text:notes.txt --seqlen 1024",
        run=run_eval,
    )
    parser.add_argument("--model", required=True, metavar="hf:DIR", help="hf:DIR (a save_pretrained folder) or "
                        "hf:FILE.gguf")
    parser.add_argument("--dataset", default=DEFAULT, help="text:FILE.txt, text:FILE.jsonl:FIELD, text:DIR "
                        "(datasets.save_to_disk) or text:pydoc (Python's documentation, the default)")
    parser.add_argument("--mask", default=None, metavar="FILE", help="a masks.safetensors to apply first")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the result as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_lm_options(parser)


def run_eval(args: argparse.Namespace) -> int:
    if args.json:
        check_output(args.json, kind="file")
    mask = load_tensors(args.mask, what="mask file") if args.mask else None
    value, tokens = held_out_perplexity(args.model, dataset=args.dataset, dtype=args.dtype, seqlen=args.seqlen,
                                        held_out=args.held_out_tokens, mask=mask, progress=not args.quiet)
    print(f"{args.model}: perplexity {value:.3f} on {tokens:,} held-out tokens of {args.dataset} "
          f"(windows of {args.seqlen})")
    if args.json:
        atomic_write_text(args.json, json.dumps({"model": args.model, "dataset": args.dataset, "perplexity": value,
                                                 "tokens": tokens, "window": args.seqlen}, indent=2))
    return 0
