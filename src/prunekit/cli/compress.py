"""``prunekit compress``: Deep Compression of a checkpoint -- (prune ->) share or quantize -> fine-tune the
centroids -> entropy-code into one file."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError
from ..hf.compress import compress_pretrained
from ..hf.load import is_hf_reference
from ..study import prune_checkpoint
from ..study.compress_run import CENTROID_RECIPE, DEFAULT_BITS, QUANTIZATIONS, compress_checkpoint
from ..training import TrainConfig
from .common import add_command
from .lm import add_lm_options, text_dataset
from .options import add_dataclass_options, dataclass_from_args
from .prune_options import add_prune_options, prune_spec_from_args
from .recovery import add_recovery_options, recovery_from_args, schedule_help


def register(commands) -> None:
    parser = add_command(
        commands, "compress", help="Deep Compression: share/quantize the weights that stay, entropy-code them",
        description="Han et al. 2016's pipeline on a checkpoint: k-means weight sharing of every layer's non-zero "
        "weights (or uniform per-channel integers that keep zeros), the centroids fine-tuned on the training set "
        "(the zeros and the codes fixed), then the codes and the positions of the non-zero weights (relative "
        "gaps) entropy-coded into OUT/model.pkz, which decodes back to the same model bit for bit. Every stage's "
        "size and test accuracy go into OUT/compress.json and are printed. With --sparsity, the checkpoint is "
        "pruned first (any --schedule) into OUT/pruned.\n\nExamples:\n"
        "  prunekit compress --checkpoint runs/lenet300-w92 --bits linear=5 --out runs/lenet300-z\n"
        "  prunekit compress --checkpoint runs/lenet300 --sparsity 92 --schedule iterative --out runs/lenet300-z",
        run=run_compress,
    )
    parser.add_argument("--checkpoint", default=None, help="the checkpoint folder (a pruned one, or give --sparsity); "
                        "for a language model give --model hf:DIR instead")
    parser.add_argument("--out", required=True, help="folder for the compressed file and its report")
    parser.add_argument("--quantization", choices=QUANTIZATIONS, default="shared",
                        help="shared: k-means weight sharing, centroids fine-tuned; uniform: per-channel symmetric "
                        "integers (int8 is --bits 8, int4 --bits 4), zero kept as code 0, rounded to nearest; gptq: "
                        "the same integers, rounding errors compensated from training batches (GPTQ, mask held)")
    parser.add_argument("--bits", type=bits_option, default=DEFAULT_BITS, metavar="B | linear=B,conv=B[,LAYER=B]",
                        help="bits per code, for every layer or per layer kind (default linear=5,conv=8: the "
                        "paper's widths on AlexNet), LAYER=B for a layer by name (fnmatch) over its kind; 1-8")
    parser.add_argument("--no-centroid-training", action="store_true",
                        help="shared weights as k-means leaves them (no fine-tuning of the centroids)")
    add_dataclass_options(parser, TrainConfig, prefix="centroid-", defaults=CENTROID_RECIPE,
                          title="centroid fine-tuning (shared weights)", skip=("precision",))
    parser.add_argument("--sparsity", type=float, default=None,
                        help="prune the checkpoint to this percent first (into OUT/pruned), with --schedule")
    parser.add_argument("--schedule", default="oneshot", help="with --sparsity: the pruning schedule; " + schedule_help())
    add_prune_options(parser, skip=("pattern",))
    add_recovery_options(parser)
    parser.add_argument("--data-dir", default=None, help="folder holding the dataset files (default: $PRUNEKIT_DATA)")
    parser.add_argument("--dataset", default=None, help="the dataset (default: the checkpoint's)")
    parser.add_argument("--model", default=None, metavar="hf:DIR | FILE.py:FUNCTION",
                        help="a Hugging Face language model (hf:DIR, hf:FILE.gguf; a pruned one too): its decoder "
                        "layers quantized (--quantization uniform or gptq), perplexity on --dataset text:...; or, "
                        "for a checkpoint of your own model, the FILE.py:FUNCTION it was built with")
    parser.add_argument("--embedding-bits", type=int, default=None,
                        help="language models: also round the input embedding (and a head tied to it) per row to "
                        "this many bits (default: stored as it is)")
    add_lm_options(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def bits_option(text: str):
    """``5`` or ``linear=5,conv=8`` as an int or a dict of layer kind to bits."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    bits = {}
    for part in text.split(","):
        kind, _, value = part.partition("=")
        if not value.strip().isdigit():
            raise argparse.ArgumentTypeError(f"{text!r}: expected B or linear=B,conv=B[,LAYER=B] with integer bits")
        bits[kind.strip()] = int(value)
    return bits


def run_compress(args: argparse.Namespace) -> int:
    if args.model and is_hf_reference(args.model):
        return run_compress_lm(args)
    if not args.checkpoint:
        raise ConfigError("give --checkpoint (or --model hf:DIR for a language model)")
    checkpoint = args.checkpoint
    centroids = None if args.no_centroid_training else dataclass_from_args(TrainConfig, args, prefix="centroid-",
                                                                            skip=("precision",))
    if args.sparsity is not None:
        spec = prune_spec_from_args(args)
        pruned = Path(args.out) / "pruned"
        if pruned.exists():
            raise ConfigError(f"{pruned} exists: compress it with --checkpoint {pruned} (without --sparsity), or "
                              f"give another --out")
        result = prune_checkpoint(checkpoint, spec, args.sparsity, out=pruned, schedule=args.schedule,
                                  recovery=recovery_from_args(args), data_dir=args.data_dir, dataset=args.dataset,
                                  model_source=args.model, progress=not args.quiet)
        print(f"pruned to {args.sparsity:g}% ({args.schedule}): test accuracy {result.metrics['test_accuracy']:.4f} "
              f"-> {result.path}")
        checkpoint = result.path
    result = compress_checkpoint(checkpoint, out=args.out, quantization=args.quantization, bits=args.bits,
                                 centroids=centroids, data_dir=args.data_dir, dataset=args.dataset,
                                 model_source=args.model, progress=not args.quiet)
    dense = result.metrics["dense_bytes"]
    print(f"{'stage':18s} {'bytes':>11s} {'x smaller':>9s} {'test accuracy':>13s}")
    print(f"{'dense fp32':18s} {dense:>11,} {1.0:>9.1f} {_accuracy(result.metrics['dense_test_accuracy']):>13s}")
    for stage in result.stages:
        label = {"input": "pruned (sparse)"}.get(stage["stage"], stage["stage"])
        print(f"{label:18s} {stage['bytes']:>11,} {stage['ratio']:>9.1f} {_accuracy(stage['test_accuracy']):>13s}")
    for t in result.export.tensors:
        print(f"  {t.name:20s} {t.kind} {t.bits} bits, {t.nonzeros:,} non-zero: codes {t.code_bytes:,} B, positions "
              f"{t.position_bytes:,} B (gaps capped at {t.gap_cap}), table {t.table_bytes:,} B")
    print(f"wrote {result.file} ({result.export.file_bytes:,} bytes) and {result.report}")
    return 0


def _accuracy(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def run_compress_lm(args: argparse.Namespace) -> int:
    """``prunekit compress --model hf:DIR``: quantize a language model's decoder layers into a Hugging Face folder
    and ``model.pkz``."""
    if args.checkpoint or args.sparsity is not None:
        raise ConfigError("--model hf:DIR compresses the model as it is: prune it first with prunekit prune --model "
                          "(no --checkpoint, no --sparsity here)")
    if args.quantization == "shared" or not isinstance(args.bits, int):
        raise ConfigError("a language model is quantized with --quantization uniform or gptq and one --bits B")
    result = compress_pretrained(args.model, out=args.out, quantization=args.quantization, bits=args.bits,
                                 dataset=text_dataset(args.dataset), seqlen=args.seqlen, held_out=args.held_out_tokens,
                                 calibration_sequences=args.calibration_batches, embedding_bits=args.embedding_bits,
                                 progress=not args.quiet)
    print(f"{args.model}: {args.quantization} {args.bits}-bit decoder layers; held-out perplexity "
          f"{result.perplexity_before:.3f} -> {result.perplexity:.3f}; {result.file} {result.file_bytes:,} bytes, "
          f"{result.dense_bytes / result.file_bytes:.1f}x smaller than the fp32 parameters ({result.dense_bytes:,}); "
          f"-> {result.path} (loads with stock transformers)")
    return 0
