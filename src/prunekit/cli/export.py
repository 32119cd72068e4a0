"""``prunekit export``: write a pruned checkpoint as a compressed file or folder (a registered format)."""

from __future__ import annotations

import argparse

from ..checkpoint import WEIGHTS_FILE
from ..deploy import EXPORTERS, ExportOptions
from ..errors import ConfigError
from ..hf import LMCheckpoint, example_tokens, load_model_or_checkpoint
from ..storage import check_output
from ..references import call
from .common import add_command, add_user_model_option, shape


def register(commands) -> None:
    formats = "\n".join(f"  {name + ':':9s}{EXPORTERS.describe(name)}" for name in EXPORTERS.names())
    export = add_command(
        commands, "export", help="write a compressed file: " + ", ".join(EXPORTERS.names()),
        description="Write a pruned checkpoint as a compressed file and print its size against the dense fp32 "
        f"safetensors file.\n{formats}\n\nExample:\n"
        "  prunekit export --checkpoint runs/mlp-w95 --format sparse --fp16 --out mlp-w95.safetensors\n"
        "  prunekit export --checkpoint hf:runs/smollm2-w50 --format sparse --out smollm2-w50.safetensors\n"
        "  prunekit export --checkpoint hf:model.gguf --format hf --out runs/model",
        run=run_exporter,
    )
    export.add_argument("--checkpoint", required=True, help="checkpoint folder (regular or compact), or a Hugging "
                        "Face model: hf:DIR (a pruned one too) or hf:FILE.gguf")
    export.add_argument("--format", required=True, choices=EXPORTERS.names(), help="what to write")
    export.add_argument("--out", required=True, help="file (sparse, onnx) or folder (compact) to write")
    export.add_argument("--fp16", action="store_true", help="sparse only: store values as fp16 (lossy)")
    export.add_argument("--compact", action="store_true",
                        help="sparse only: remove dead units first (the file then holds the compact architecture)")
    add_export_inputs(export)


def add_export_inputs(parser) -> None:
    """``--input-shape``, ``--example-inputs`` and ``--model`` (for checkpoints of user models)."""
    parser.add_argument("--input-shape", type=shape, default=None,
                        help="one sample's shape, e.g. 1,28,28 (default: the checkpoint's)")
    parser.add_argument("--example-inputs", default=None, metavar="FILE.py:FUNCTION",
                        help="a function returning one batch the model accepts (a tensor, tuple or dict): needed "
                        "to compact models that are not an nn.Sequential of standard layers when their input is "
                        "not one tensor of --input-shape")
    add_user_model_option(parser)


def run_exporter(args: argparse.Namespace) -> int:
    exporter = EXPORTERS.get(args.format)
    if args.format != "sparse" and (args.fp16 or args.compact):
        raise ConfigError("--fp16 and --compact apply to --format sparse only")
    out = check_output(args.out, kind=exporter.output, inputs=[args.checkpoint])
    ckpt = load_model_or_checkpoint(args.checkpoint, model_source=args.model)
    language_model = isinstance(ckpt, LMCheckpoint)
    if language_model and not exporter.language_models:
        usable = " or ".join(n for n in EXPORTERS.names() if EXPORTERS.get(n).language_models)
        smaller = (" (a language model is made smaller by unit pruning, which writes the compacted folder: prunekit "
                   "prune --model hf:DIR --method unit --sparsity N --out DIR)") if args.format == "compact" else ""
        raise ConfigError(f"{args.format} output is not available for Hugging Face language models yet; use "
                          f"prunekit export --format {usable}{smaller}")
    input_shape = args.input_shape or ckpt.input_shape
    example = call(args.example_inputs, "example inputs") if args.example_inputs else example_tokens(ckpt)
    if input_shape is None and example is None:
        raise ConfigError(f"{args.checkpoint} does not record its input shape; pass --input-shape, e.g. 1,28,28, "
                          f"or --example-inputs FILE.py:FUNCTION")
    options = ExportOptions(tuple(input_shape) if input_shape else None, fp16=args.fp16, compact=args.compact,
                            metrics=ckpt.metrics, source=ckpt.config.get("model", {}), example_inputs=example,
                            mask=ckpt.mask, pruning=ckpt.config.get("pruning"), checkpoint=ckpt)
    for line in exporter.run(ckpt.model, out, options):
        print(line)
    dense = _dense_bytes(ckpt)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) if out.is_dir() else out.stat().st_size
    print(f"{args.format}: {size:,} bytes; dense fp32 {WEIGHTS_FILE} {dense:,} bytes: {dense / size:.2f}x smaller "
          f"-> {out}")
    return 0


def _dense_bytes(ckpt) -> int:
    """The size of the dense fp32 weights: the checkpoint's weights file, or for a Hugging Face model or a
    compressed file the bytes of its parameters (tied ones once) in fp32, as safetensors stores them."""
    if not isinstance(ckpt, LMCheckpoint) and (ckpt.path / WEIGHTS_FILE).is_file():
        return (ckpt.path / WEIGHTS_FILE).stat().st_size
    unique = {id(p): p for p in ckpt.model.parameters()}
    return sum(p.numel() * 4 for p in unique.values())
