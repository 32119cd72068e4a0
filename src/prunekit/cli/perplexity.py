"""``prunekit eval``: held-out perplexity and zero-shot accuracy (lm-eval) of a language model."""

from __future__ import annotations

import argparse
import json

from ..data.text import DEFAULT
from ..errors import ConfigError
from ..data.text import token_splits
from ..hf import load, perplexity
from ..hf.zero_shot import check_tasks, zero_shot
from ..prune import Mask
from ..storage import atomic_write_text, check_output
from ..storage.tensors import load_tensors
from .common import add_command, name_list, positive_int
from .lm import add_lm_options


def register(commands) -> None:
    parser = add_command(
        commands, "eval", help="held-out perplexity and zero-shot accuracy of a language model",
        description="Measure the perplexity of a causal language model on the held-out part of a text: its "
        "first --held-out-tokens tokens, in non-overlapping windows of --seqlen tokens (the protocol of the "
        "SparseGPT and Wanda code). The same tokens `prunekit prune --model hf:DIR` measures. With --tasks "
        "(the lm-eval extra): zero-shot accuracy on lm-evaluation-harness tasks, built-in ones whose data is on "
        "this machine or local task files (--task-dir).\n\n"
        "Examples:\n  prunekit eval --model hf:runs/smollm2\n"
        "  prunekit eval --model hf:runs/smollm2-w50 --dataset text:notes.txt --seqlen 1024\n"
        "  prunekit eval --model hf:runs/smollm2-w50 --tasks my_task --task-dir tasks/ --no-perplexity",
        run=run_eval,
    )
    parser.add_argument("--model", required=True, metavar="hf:DIR", help="hf:DIR (a save_pretrained folder) or "
                        "hf:FILE.gguf")
    parser.add_argument("--dataset", default=DEFAULT, help="text:FILE.txt, text:FILE.jsonl:FIELD, text:DIR "
                        "(datasets.save_to_disk) or text:pydoc (Python's documentation, the default)")
    parser.add_argument("--mask", default=None, metavar="FILE", help="a masks.safetensors to apply first")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the result as JSON")
    parser.add_argument("--tasks", type=name_list, default=(), metavar="TASK[,TASK]",
                        help="zero-shot lm-evaluation-harness tasks (needs pip install 'prunekit[eval]')")
    parser.add_argument("--task-dir", default=None, metavar="DIR",
                        help="a folder of lm-eval task YAML files (templates only: no !function code)")
    parser.add_argument("--limit", type=positive_int, default=None, help="at most N documents per task")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="sequences per forward pass of a task")
    parser.add_argument("--no-perplexity", action="store_true", help="only the --tasks")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_lm_options(parser)


def run_eval(args: argparse.Namespace) -> int:
    if args.json:
        check_output(args.json, kind="file")
    if args.no_perplexity and not args.tasks:
        raise ConfigError("--no-perplexity leaves nothing to measure: give --tasks")
    if args.tasks:
        check_tasks(args.tasks, args.task_dir)  # names checked before the model is loaded
    pretrained = load(args.model, args.dtype)
    if args.mask:
        mask = Mask.from_tensors(load_tensors(args.mask, what="mask file"), args.mask)
        mask.validate(pretrained.model)
        mask.apply_(pretrained.model)
    result = {"model": args.model, "mask": args.mask}
    if not args.no_perplexity:
        splits = token_splits(args.dataset, pretrained.tokenizer, args.held_out_tokens, args.seqlen)
        value = perplexity(pretrained.model, splits.held_out, args.seqlen, not args.quiet)
        result.update(dataset=args.dataset, perplexity=value, tokens=len(splits.held_out), window=args.seqlen)
        print(f"{args.model}: perplexity {value:.3f} on {len(splits.held_out):,} held-out tokens of {args.dataset} "
              f"(windows of {args.seqlen})")
    if args.tasks:
        scores = zero_shot(pretrained.model, pretrained.tokenizer, args.tasks, task_dir=args.task_dir,
                           limit=args.limit, batch_size=args.batch_size)
        result["zero_shot"] = scores
        for task, metrics in scores.items():
            print(f"{args.model}: {task} zero-shot " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2))
    return 0
