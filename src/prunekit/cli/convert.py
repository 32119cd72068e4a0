"""``prunekit convert``: a pretrained model (GGUF file or folder) written as a Hugging Face folder."""

from __future__ import annotations

import argparse

from ..hf import load, save_pretrained
from ..storage import check_output
from .common import add_command
from .lm import DTYPES


def register(commands) -> None:
    parser = add_command(
        commands, "convert", help="write a pretrained model (hf:FILE.gguf or hf:DIR) as a Hugging Face folder",
        description="Load a causal language model with transformers, offline (a GGUF file is dequantised by "
        "transformers' GGUF reader), and write it with its tokenizer as a save_pretrained folder (safetensors) "
        "that every command takes as --model hf:DIR and stock transformers loads.\n\nExample:\n"
        "  prunekit convert --model hf:SmolLM2-135M-Instruct.Q4_1.gguf --out runs/smollm2",
        run=run_convert,
    )
    parser.add_argument("--model", required=True, metavar="hf:PATH", help="hf:FILE.gguf or hf:DIR")
    parser.add_argument("--out", required=True, help="the new folder (checked before any work)")
    parser.add_argument("--dtype", choices=list(DTYPES), default="fp32", help="the weights' dtype")


def run_convert(args: argparse.Namespace) -> int:
    out = check_output(args.out, inputs=[args.model.removeprefix("hf:")])
    pretrained = load(args.model, args.dtype)
    path = save_pretrained(pretrained, out, record={"converted_from": str(pretrained.source)})
    count = sum(p.numel() for p in pretrained.model.parameters())
    print(f"{args.model}: {type(pretrained.model).__name__}, {count:,} parameters ({args.dtype}) -> {path}")
    return 0
