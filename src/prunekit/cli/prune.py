"""``prunekit prune``: prune a checkpoint (one-shot or with a recovery schedule) and save it with its mask."""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from ..prune import sparsity_report
from ..prune.select import check_layer_sparsities
from ..storage.jsonio import read_json
from ..hf import is_hf_reference
from ..study import prune_checkpoint
from ..study.prune_request import request_from_keywords
from ..training import PRECISIONS
from .common import (add_bn_batches_option, add_command, add_device_option, positive_float,
                     positive_int)
from .lm import add_lm_options, run_prune_lm
from .prune_options import add_prune_options, prune_spec_from_args
from .recovery import add_recovery_options, recovery_from_args, schedule_help


def register(commands) -> None:
    parser = add_command(
        commands, "prune", help="prune a checkpoint and save it with its mask",
        description="Prune a trained checkpoint (one-shot, or with a schedule that recovers accuracy), evaluate "
        "it on the test set, write the pruned checkpoint (weights, masks, config, metrics) and print the "
        "sparsity report. The output layer is left whole unless --include-output.\n\nExamples:\n"
        "  prunekit prune --checkpoint runs/mlp --method weight --sparsity 90 --out runs/mlp-w90\n"
        "  prunekit prune --checkpoint runs/mlp --method unit --sparsity 90 --schedule lottery --out runs/mlp-u90\n"
        "  prunekit prune --checkpoint runs/mlp --sparsity 99 --schedule iterative --distill --out runs/mlp-w99\n"
        "  prunekit prune --model hf:runs/smollm2 --sparsity 50 --criterion wanda --dataset text:pydoc "
        "--out runs/smollm2-w50",
        run=run_prune,
    )
    parser.add_argument("--checkpoint", default=None, help="checkpoint folder to prune (or --model hf:DIR)")
    parser.add_argument("--sparsity", type=float, default=None,
                        help="percent of the pruned layers' weights (or units) to prune, in [0, 100), e.g. 92.5")
    parser.add_argument("--ratios", default=None, metavar="FILE",
                        help="instead of --sparsity: a JSON object {layer pattern: percent} giving every layer its "
                        "own sparsity (layers it does not name are left whole); `prunekit sensitivity --target` "
                        "writes one")
    parser.add_argument("--target-latency", type=positive_float, default=None, metavar="RATIO",
                        help="instead of --sparsity (unit pruning): prune coupled groups until the compacted model "
                        "measures at most RATIO x the dense latency on this machine's CPU (e.g. 0.5), choosing "
                        "groups by accuracy lost per latency saved (a sensitivity and latency table is measured first); "
                        "for a language model (--model hf:DIR), the smallest uniform width pruning whose decode time "
                        "per token (batch 1, KV cache) measures at most RATIO x the dense model's")
    sizes = parser.add_argument_group("size targets of a language model (--model hf:DIR --method unit, instead of "
                                      "--sparsity)")
    sizes.add_argument("--target-params", type=parameter_count, default=None, metavar="N",
                       help="the smallest uniform width pruning whose compacted model has at most N parameters "
                       "(e.g. 100M, 1.5B or 100000000)")
    sizes.add_argument("--target-memory", type=byte_size, default=None, metavar="SIZE",
                       help="the smallest uniform width pruning whose weights take at most SIZE bytes at --dtype "
                       "(e.g. 300MB, 1.5GB, 500MiB; the KV cache is not counted)")
    sizes.add_argument("--blocks", type=blocks_option, default=None, metavar="N|auto",
                       help="with a size target (--target-latency too): remove N decoder blocks first (ranked as "
                       "drop-blocks ranks them) and cut the width to meet the rest, or 'auto': try 0 and steps of "
                       "about a tenth of the blocks, and keep the plan of the lowest perplexity on validation "
                       "windows of the text (every candidate is printed and recorded)")
    parser.add_argument("--latency-batch", type=positive_int, default=256,
                        help="the batch size --target-latency is measured at")
    parser.add_argument("--align-channels", type=positive_int, default=None, metavar="N",
                        help="with --target-latency: keep only widths that are multiples of N (e.g. 8; fast kernels "
                        "want channel counts the vector width divides; a layer of at most N units keeps the plain grid)")
    add_bn_batches_option(parser, when="with --target-latency: ")
    add_prune_options(parser)
    parser.add_argument("--schedule", default="oneshot", help="pruning schedule; " + schedule_help())
    parser.add_argument("--out", required=True, help="folder for the pruned checkpoint (checked before any work)")
    parser.add_argument("--data-dir", default=None, help="folder holding the dataset files (default: $PRUNEKIT_DATA)")
    parser.add_argument("--dataset", default=None,
                        help="the dataset (default: the checkpoint's; a user FILE.py:FUNCTION must be given again)")
    parser.add_argument("--model", default=None, metavar="hf:DIR | FILE.py:FUNCTION",
                        help="hf:DIR or hf:FILE.gguf: prune a pretrained Hugging Face language model (the folder is "
                        "the checkpoint; the output is a Hugging Face folder stock transformers loads; --dataset "
                        "text:...); or, for a checkpoint of your own model, the same FILE.py:FUNCTION it was built "
                        "with (a checkpoint never imports code by itself)")
    add_lm_options(parser, owl=True)
    add_device_option(parser)
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="autocast precision of every recovery recipe (default: each recipe's, fp32)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_recovery_options(parser)


def run_prune(args: argparse.Namespace) -> int:
    spec = prune_spec_from_args(args)  # its rules checked before anything is loaded
    ratios = read_ratios(args.ratios) if args.ratios else None
    recovery = recovery_from_args(args)
    if args.precision:
        recovery = recovery.with_precision(args.precision)
    _, target = request_from_keywords(spec, None, {
        "sparsity": args.sparsity, "ratios": ratios, "target_latency": args.target_latency,
        "latency_batch": args.latency_batch, "latency_align": args.align_channels,
        "latency_bn_batches": args.bn_batches})
    if is_hf_reference(args.model):
        return run_prune_lm(args, spec, target, recovery)
    if args.target_params is not None or args.target_memory is not None or args.blocks is not None:
        raise ConfigError("--target-params, --target-memory and --blocks size a language model (--model hf:DIR); for "
                          "the model zoo give --sparsity or --target-latency")
    if not args.checkpoint:
        raise ConfigError("give the checkpoint to prune (--checkpoint DIR), or a Hugging Face model (--model hf:DIR)")
    result = prune_checkpoint(args.checkpoint, spec, target, out=args.out, schedule=args.schedule,
                              recovery=recovery, data_dir=args.data_dir, dataset=args.dataset,
                              model_source=args.model, device=args.device, progress=not args.quiet)
    print(sparsity_report(result.model).format_table())
    m = result.metrics
    dense = m.get("dense_test_accuracy")
    dense_text = f" (dense {dense:.4f})" if dense is not None else ""
    cost = f", {m['train_epochs']:g} epochs of training in {m['train_seconds']:.1f} s" if m["train_epochs"] else ""
    quality = f"test accuracy {m['test_accuracy']:.4f}{dense_text}" if m["test_accuracy"] is not None else \
        f"test loss {m['test_loss']:.4f}"
    sparsity = result.metrics["sparsity_actual"] if args.sparsity is None else args.sparsity
    shape = f"{args.pattern} pattern, {sparsity:g}%" if args.pattern else f"{sparsity:g}%"
    if args.target_latency is not None:
        print(f"latency target {args.target_latency:g}x dense at batch {args.latency_batch}: measured "
              f"{result.metrics['latency_ratio_measured']:.3f}x (compacted, this machine's CPU); plans measured: "
              + ", ".join(f"{ratio:.3f}x" for _, ratio in result.metrics["latency_plans_measured"]))
    print(f"\n{args.method} pruning at {shape} of the pruned layers ({args.scope}, {args.schedule}{cost}; "
          f"{m['weight_sparsity_all']:.2f}% of all weights are zero): {quality} -> {result.path}")
    return 0


def parameter_count(text: str) -> int:
    """A parameter count: an integer, or a number with K, M or B (thousand, million, billion).

    Example:
        >>> parameter_count("100M"), parameter_count("1.5B"), parameter_count("12345")
        (100000000, 1500000000, 12345)
    """
    scale = {"K": 10 ** 3, "M": 10 ** 6, "B": 10 ** 9}.get(text[-1:].upper(), 1)
    number = text[:-1] if scale > 1 else text
    try:
        value = round(float(number) * scale)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a parameter count such as 100M, 1.5B or 100000000, got {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"a parameter count must be positive, got {text!r}")
    return value


def blocks_option(text: str):
    """``auto`` or a count of blocks (0 or more).

    Example:
        >>> blocks_option("auto"), blocks_option("5")
        ('auto', 5)
    """
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of blocks or 'auto', got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"the number of blocks cannot be negative, got {text!r}")
    return value


def byte_size(text: str) -> int:
    """A size in bytes: an integer, or a number with KB, MB, GB (powers of 1000) or KiB, MiB, GiB (of 1024).

    Example:
        >>> byte_size("300MB"), byte_size("1.5GiB"), byte_size("1000")
        (300000000, 1610612736, 1000)
    """
    units = {"KIB": 2 ** 10, "MIB": 2 ** 20, "GIB": 2 ** 30, "KB": 10 ** 3, "MB": 10 ** 6, "GB": 10 ** 9, "B": 1}
    upper = text.strip().upper()
    unit = next((u for u in units if upper.endswith(u)), "")
    try:
        value = round(float(upper[:len(upper) - len(unit)]) * units.get(unit, 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size such as 300MB, 1.5GB or 500MiB, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"a size must be positive, got {text!r}")
    return value


def read_ratios(path: str) -> dict[str, float]:
    """A per-layer plan from a JSON file: an object of layer patterns to percentages."""
    plan = read_json(path, error=ConfigError)
    if not isinstance(plan, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                             for v in plan.values()):
        raise ConfigError(f"{path}: expected a JSON object of layer patterns to percentages, "
                          f'e.g. {{"fc1": 90, "fc2": 75}}')
    return check_layer_sparsities(plan)
