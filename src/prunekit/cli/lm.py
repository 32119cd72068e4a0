"""Options and the run of commands on pretrained language models (``--model hf:DIR``)."""

from __future__ import annotations

import argparse
from dataclasses import replace

from ..data.text import DEFAULT, is_text_reference
from ..errors import ConfigError
from ..hf import DTYPES, is_hf_folder, is_hf_reference, prune_pretrained, train_pretrained  # noqa: F401  (DTYPES: the --dtype choices)
from ..hf import LMSeries, SizeTarget, sweep_pretrained
from ..plan import LatencyTarget
from ..training import DistillConfig
from .common import positive_int
from .prune_options import prune_spec_from_args
from .recovery import recovery_from_args


def add_lm_options(parser: argparse.ArgumentParser, *, owl: bool = False) -> None:
    """``--dtype``, ``--seqlen`` and ``--held-out-tokens`` (for ``--model hf:DIR`` and ``--dataset text:...``);
    ``--owl`` too with ``owl``."""
    group = parser.add_argument_group("language models (--model hf:DIR or hf:FILE.gguf, --dataset text:...)")
    group.add_argument("--dtype", choices=list(DTYPES), default="fp32", help="the weights' dtype once loaded")
    group.add_argument("--seqlen", type=positive_int, default=512,
                       help="tokens per perplexity window and per calibration sequence")
    group.add_argument("--held-out-tokens", type=positive_int, default=16384,
                       help="the text's first N tokens are held out for perplexity; calibration comes after them")
    if owl:
        group.add_argument("--owl", action="store_true",
                           help="turn --sparsity into OWL per-block sparsities (blocks whose weights carry more "
                           "activation outliers are pruned less; the average is kept), measured on the calibration "
                           "text")


def add_calibrated_command_options(parser: argparse.ArgumentParser, measured: str) -> None:
    """``--dataset``, ``--calibration-batches`` (the sequences ``measured`` is measured on), ``--out``, the
    language-model options and ``--quiet``: what every command that calibrates a language model takes."""
    parser.add_argument("--dataset", default=DEFAULT, help="text:FILE.txt, text:FILE.jsonl:FIELD, text:DIR or "
                        "text:pydoc (the default)")
    parser.add_argument("--calibration-batches", type=positive_int, default=32,
                        help=f"calibration sequences (of --seqlen tokens) {measured} measured on")
    parser.add_argument("--out", required=True, help="the output folder (checked before any work)")
    add_lm_options(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run_prune_lm(args: argparse.Namespace, spec, target, recovery) -> int:
    """``prunekit prune --model hf:DIR``: post-training pruning (one-shot, or with a schedule that fine-tunes on
    the text) into a Hugging Face folder."""
    if args.checkpoint:
        raise ConfigError("give --checkpoint or --model hf:DIR, not both: a Hugging Face folder is the checkpoint")
    size = None
    if isinstance(target, LatencyTarget) or args.target_params is not None or args.target_memory is not None:
        if args.align_channels is not None:
            raise ConfigError("a language model keeps channel multiples with --round-to N, not --align-channels")
        latency = target.ratio if isinstance(target, LatencyTarget) else None
        size = SizeTarget(params=args.target_params, memory=args.target_memory, latency=latency,
                          blocks=args.blocks).check()
        target = None if latency is not None else target  # a sparsity beside a size target is refused below
    elif args.blocks is not None:
        raise ConfigError("--blocks plans depth with a size target (--target-params, --target-memory, "
                          "--target-latency); to remove blocks alone use prunekit drop-blocks")
    dataset = text_dataset(args.dataset)
    result = prune_pretrained(args.model, spec, target, out=args.out, dataset=dataset, dtype=args.dtype,
                              seqlen=args.seqlen, held_out=args.held_out_tokens, owl=args.owl,
                              schedule=args.schedule, recovery=recovery, size=size, progress=not args.quiet)
    print(f"{args.model}: {spec.method} pruning ({spec.criterion or 'magnitude'}) to {result.sparsity:.2f}% of the "
          f"pruned layers{_trained(args.schedule, result)} in {result.prune_seconds:.1f} s; held-out perplexity ({dataset}, windows of "
          f"{args.seqlen}) {result.perplexity_dense:.3f} dense -> {result.perplexity:.3f} -> {result.path}")
    if result.depth_candidates is not None:
        tried = "; ".join(f"{c['blocks']} blocks + width {c['sparsity']:g}%: {c['validation_perplexity']:.3f}"
                          if "error" not in c else f"{c['blocks']} blocks: cannot" for c in result.depth_candidates)
        print(f"depth x width: removed blocks {result.blocks_removed or 'none'} (validation perplexity of the plans "
              f"tried, pruned without recovery: {tried})")
    if result.search is not None:
        search = result.search
        value = f"{search.value:.3f}x" if search.target.kind == "latency" else f"{int(search.value):,}"
        print(f"target {search.target.describe()}: uniform sparsity {search.sparsity:g}% gives {value} "
              f"({search.params:,} parameters; {len(search.tried)} plans tried, in prunekit.json)")
    if result.config_changes is not None:
        changed = ", ".join(f"{k} {a} -> {b}" if a is not None else f"{k} {b} (written out)"
                            for k, (a, b) in result.config_changes.items())
        fewer = f"{result.params_dense:,} -> {result.params:,} parameters ({100 * (1 - result.params / result.params_dense):.1f}% fewer)"
        if result.nonstandard:
            print(f"compacted: {fewer}; {result.nonstandard}: written in prunekit's compacted form, which needs "
                  f"prunekit to load (--model hf:{result.path}, prunekit.hf.load or prunekit.load_compacted); stock "
                  f"transformers cannot. Prune every layer alike (--scope layer, one --sparsity) for a standard config")
        else:
            print(f"compacted: {fewer}; config: {changed or 'unchanged'}; stock transformers loads the folder")
    return 0


def _trained(schedule: str, result) -> str:
    if schedule == "oneshot":
        return ""
    return f", {schedule} on {result.train_tokens:,} tokens"


def text_dataset(dataset: str | None, default: str | None = None) -> str:
    """The ``text:`` dataset a language-model command reads: ``dataset``, or ``text:pydoc`` when it was left at
    the command's (image) default.

    Raises:
        ConfigError: for a dataset that is not text.
    """
    if dataset is None or dataset == default:
        return DEFAULT
    if not is_text_reference(dataset):
        raise ConfigError(f"a Hugging Face model reads text: give --dataset text:FILE.txt, text:FILE.jsonl:FIELD, "
                          f"text:DIR or text:pydoc, not {dataset!r}")
    return dataset


def run_train_lm(args: argparse.Namespace, config, default_dataset: str | None) -> int:
    """``prunekit train --model hf:DIR``: fine-tune a pretrained language model on a text."""
    dataset = text_dataset(args.dataset, default_dataset)
    distill = DistillConfig(temperature=args.distill_temperature, alpha=args.distill_alpha)
    result = train_pretrained(args.model, config, out=args.out, dataset=dataset, dtype=args.dtype,
                              seqlen=args.seqlen, held_out=args.held_out_tokens, device=args.device,
                              teacher=args.teacher, distill=distill, state_every=args.state_every,
                              gradient_checkpointing=args.gradient_checkpointing, progress=not args.quiet)
    how = "fine-tuned" if args.teacher is None else f"distilled from {args.teacher}"
    if result.resumed_at:
        how += f" (resumed at step {result.resumed_at})"
    print(f"{args.model}: {how} on {result.train_tokens:,} tokens of {dataset} in {result.train_seconds:.1f} s; "
          f"held-out perplexity (windows of {args.seqlen}) {result.perplexity_before:.3f} -> "
          f"{result.perplexity:.3f} -> {result.path}")
    return 0


LM_SPARSITIES = (25.0, 50.0, 60.0, 70.0)
"""The levels of ``prunekit sweep --model hf:DIR`` unless ``--sparsities`` says otherwise."""
LM_SERIES = ("oneshot@magnitude", "oneshot@wanda")
"""Its series unless ``--schedules`` says otherwise."""


def run_sweep_lm(args: argparse.Namespace) -> int:
    """``prunekit sweep --model hf:DIR``: series (schedule@criterion, OWL) x levels (sparsities, an N:M
    pattern), each point's held-out perplexity; see :func:`~prunekit.hf.sweep.sweep_pretrained`."""
    if args.checkpoint:
        raise ConfigError("give --checkpoint or --model hf:DIR, not both: a Hugging Face folder is the checkpoint")
    methods = args.methods or ("weight",)
    if len(methods) != 1:
        raise ConfigError(f"a language-model sweep prunes with one method; got --methods {','.join(methods)}")
    names = LM_SERIES if args.schedules == ("oneshot",) else args.schedules
    series = []
    for name in names:
        schedule, _, criterion = name.partition("@")
        spec = prune_spec_from_args(args, method=methods[0], criterion=criterion or None, pattern=None,
                                    sequential=True)  # --no-sequential: only for the series that calibrate
        if not args.sequential:
            try:
                spec = replace(spec, sequential=False)
            except ConfigError:
                pass  # a criterion that does not calibrate block by block (magnitude, taylor...)
        series.append(LMSeries(spec, schedule))
        if args.owl and schedule == "oneshot":
            series.append(LMSeries(spec, schedule, owl=True))
    levels = list(args.sparsities or (() if args.pattern else LM_SPARSITIES)) + ([args.pattern] if args.pattern else [])
    dataset = text_dataset(args.dataset)
    result = sweep_pretrained(args.model, series, levels, out=args.out, dataset=dataset, dtype=args.dtype,
                              seqlen=args.seqlen, held_out=args.held_out_tokens, recovery=recovery_from_args(args),
                              progress=not args.quiet)
    print(f"{args.model}: dense held-out perplexity {result.dense_perplexity:.3f} ({dataset}, windows of "
          f"{args.seqlen}); {result.points_run} points pruned in {result.seconds:.1f} s, "
          f"{len(result.points) - result.points_run} kept from before")
    for p in result.points:
        print(f"  {p['series']:<24} {p['level']:>6}: perplexity {_figure(p['perplexity'])} "
              f"({_figure(p['perplexity_ratio'], '.2f')}x dense)")
    print(f"results: {result.out / 'results.csv'}, report: {result.out / 'REPORT.md'}")
    return 0


def _figure(value, spec: str = ".3f") -> str:
    return "inf" if value is None else format(value, spec)


def refuse_language_model(reference: str | None, command: str, instead: str) -> None:
    """A clear error for a command that does not take Hugging Face models yet (not one about image data).

    Raises:
        ConfigError: if ``reference`` is ``hf:...`` or a Hugging Face folder.
    """
    if reference and (is_hf_reference(reference) or is_hf_folder(reference)):
        raise ConfigError(f"prunekit {command} does not take Hugging Face language models yet ({reference}); "
                          f"{instead}")
