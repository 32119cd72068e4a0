"""``prunekit sweep``: the reference study (and its extensions)."""

from __future__ import annotations

import argparse
import statistics

import torch

from ..errors import ConfigError
from ..prune import METHODS
from ..study import (EXECUTORS, REFERENCE_SPARSITIES, SweepConfig, make_executor, run_sweep, sweep_config_dict,
                     write_report)
from ..study.report_schedules import training_spent
from ..hf import is_hf_reference
from .lm import LM_SPARSITIES, add_lm_options, refuse_language_model, run_sweep_lm
from .common import (add_command, add_data_options, add_device_option, add_model_options, add_train_options,
                     float_list, name_list, non_negative_float, positive_float, positive_int, seed_list, train_config)
from .prune import read_ratios
from .prune_options import add_prune_options, other_spec_fields
from .recovery import add_recovery_options, recovery_from_args, schedule_help


def register(commands) -> None:
    parser = add_command(
        commands, "sweep", help="prune a baseline at many sparsities and report accuracy",
        description="Train (or reuse) a baseline, prune a fresh copy for every (method, sparsity), evaluate "
        "each on the full test set, and write OUT/results.csv, OUT/results.json, "
        "OUT/accuracy_vs_sparsity.png and OUT/REPORT.md. Finished points are kept; a rerun resumes. "
        "Sparsity is over the pruned layers; the output layer is left whole unless --include-output.\n\n"
        "Example:\n  prunekit sweep --model mlp --methods weight,unit --out runs/reference\n"
        "  prunekit sweep --schedules oneshot,iterative,gradual,lottery --out runs/recovery\n"
        "  prunekit sweep --checkpoint runs/mlp --out runs/mlp-sweep   # the checkpoint's model and dataset\n\n"
        "With several schedules, OUT/accuracy_vs_sparsity_<method>.png draws one line per schedule, and "
        "results record the epochs and seconds of training spent per point (cumulative for chained "
        "schedules, which checkpoint every level under OUT/chains/ and resume after an interruption).\n\n"
        "A pretrained language model (--model hf:DIR or hf:FILE.gguf) is pruned from a fresh copy per point and "
        "measured by its held-out perplexity on the text (--dataset text:..., default text:pydoc); series are "
        "--schedules with @CRITERION (default oneshot@magnitude,oneshot@wanda), --pattern N:M adds an N:M level, "
        "--owl adds an OWL series per one-shot series; OUT/results.json, results.csv, "
        "perplexity_vs_sparsity.png, REPORT.md:\n"
        "  prunekit sweep --model hf:runs/smollm2 --schedules oneshot@wanda,oneshot@sparsegpt "
        "--sparsities 50,60,70 --pattern 2:4 --out runs/smollm2-sweep\n\n"
        "Replicates and parallel runs:\n"
        "  prunekit sweep --seeds 0,1,2 --out runs/seeds            # a baseline per seed; mean, std and n\n"
        "  prunekit sweep --executor processes --workers 2 --out runs/par\n"
        "  prunekit sweep --executor ray --ray-address HEAD:6379 --cpus-per-job 2 --out /shared/runs/r\n"
        "Every point (or chain) is a job; workers write finished points into OUT themselves, so with Ray, OUT, "
        "the data folder and any --checkpoint must be on a filesystem every node shares.",
        run=run_sweep_cmd,
    )
    add_model_options(parser, default=None)
    parser.add_argument("--methods", type=name_list, default=None,
                        help="comma-separated pruning methods: " + ", ".join(METHODS.names())
                        + " (default: all; weight for a language model)")
    parser.add_argument("--sparsities", type=float_list, default=None,
                        help="comma-separated percentages in [0, 100) (default: the reference study's 13; "
                        + ", ".join(f"{k:g}" for k in LM_SPARSITIES) + " for a language model)")
    parser.add_argument("--flop-reductions", type=float_list, default=(),
                        help="comma-separated MAC reduction factors (e.g. 1.5,2,3) to use as the levels instead "
                        "of --sparsities: each one's sparsity is found on the baseline (one method only)")
    parser.add_argument("--ratios", default=None, metavar="FILE",
                        help="a per-layer plan, a JSON object {layer pattern: percent} (`prunekit sensitivity "
                        "--target` writes one): every level k of --sparsities prunes each layer to k / (the plan's "
                        "sparsity) of its share; one method")
    parser.add_argument("--scope", default="layer",
                        help="layer or global, or one per method, e.g. weight=global,unit=layer")
    add_prune_options(parser, skip=("method", "scope", "criterion"))  # methods and criteria: --methods, @criterion
    parser.add_argument("--schedules", type=name_list, default=("oneshot",),
                        help="comma-separated pruning schedules; a name ending in +distill distils in that "
                        "series only (e.g. iterative,iterative+distill), one ending in @CRITERION ranks with "
                        "that criterion (e.g. finetune@l2,finetune@taylor,finetune@random; see `prunekit "
                        "criteria`); " + schedule_help())
    parser.add_argument("--no-measure", action="store_true",
                        help="skip measuring each point's compressed file size and CPU latency ratios")
    parser.add_argument("--compress-bits", type=positive_int, default=None, metavar="B",
                        help="also compress every point as prunekit compress does, without fine-tuning: k-means "
                        "weight sharing with 2^B centroids, entropy-coded; adds compressed_bytes, compressed_ratio "
                        "and compressed_test_accuracy columns")
    parser.add_argument("--checkpoint", default=None,
                        help="baseline checkpoint folder to prune; its model and dataset are used (default: train "
                        "one, or reuse the one trained before in OUT with the same config)")
    parser.add_argument("--out", required=True, help="sweep folder")
    parser.add_argument("--seeds", type=seed_list, default=(),
                        help="comma-separated seeds, e.g. 0,1,2: train one baseline per seed and run every point on "
                        "each; tables and plots give the mean, standard deviation and n (replaces --seed)")
    add_executor_options(parser)
    add_train_options(parser)
    add_recovery_options(parser)
    add_device_option(parser)
    add_data_options(parser, default=None)
    add_lm_options(parser, owl=True)


SWEEP_HELD = ("include_output", "calibration_batches", "reconstruct", "include_inexact")
"""PruneSpec fields a :class:`~prunekit.study.SweepConfig` holds by name; the others go in ``spec_options``."""


def run_sweep_cmd(args: argparse.Namespace) -> int:
    if is_hf_reference(args.model):
        return run_sweep_lm(args)
    refuse_language_model(args.checkpoint, "sweep --checkpoint", "give it as --model hf:DIR")
    if args.owl:
        raise ConfigError("--owl is for language models (--model hf:DIR); OWL plans are measured on their text")
    config = SweepConfig(
        model=args.model, model_args=dict(args.model_arg), dataset=args.dataset,
        methods=args.methods or tuple(METHODS.names()), sparsities=args.sparsities or REFERENCE_SPARSITIES, scope=args.scope, train=train_config(args), schedules=args.schedules,
        recovery=recovery_from_args(args), layers=args.layers, include_output=args.include_output,
        flop_reductions=args.flop_reductions, calibration_batches=args.calibration_batches,
        reconstruct=args.reconstruct, seeds=args.seeds, pattern=args.pattern, include_inexact=args.include_inexact,
        plan=tuple(read_ratios(args.ratios).items()) if args.ratios else None,
        spec_options=other_spec_fields(args, SWEEP_HELD), compress_bits=args.compress_bits,
    )
    executor = make_executor(args.executor, ray_address=args.ray_address, workers=args.workers,
                             cpus_per_job=args.cpus_per_job, gpus_per_job=args.gpus_per_job,
                             connect_timeout=args.ray_timeout)
    result = run_sweep(config, args.out, checkpoint=args.checkpoint, data_dir=args.data_dir,
                       progress=not args.quiet, measure=not args.no_measure, device=args.device, executor=executor)
    timing = timing_text(result)
    accuracies = list(result.baseline_accuracies.values())
    baseline_acc = statistics.fmean(accuracies)
    report = write_report(result.out, baseline_accuracy=baseline_acc, config=sweep_config_dict(result.config),
                          timing=timing, baseline_accuracies=accuracies)
    seeds = f" (mean of {len(accuracies)} seeds)" if len(accuracies) > 1 else ""
    print(f"baseline {result.config.model} on {result.config.dataset}: test accuracy {baseline_acc:.4f}{seeds}")
    if result.config.flop_reductions:
        print("levels: " + ", ".join(f"{r:g}x fewer MACs = {k:g}% sparsity"
                                     for r, k in zip(result.config.flop_reductions, result.config.sparsities)))
    print(timing)
    print(f"results: {result.out / 'results.csv'}, report: {report}")
    return 0


def timing_text(result) -> str:
    """The sweep's timing: one-shot points beside the floor of one dense test-set pass each;
    with schedules that train, the training the folder's points cost."""
    floor = result.dense_pass_seconds * max(1, result.points_run)
    epochs, seconds = training_spent(result.points)
    what = "prune+evaluate points" if not epochs else "points (prune, recover, evaluate)"
    if result.parallel:
        return (f"{result.points_run} {what} in {result.points_seconds:.2f} s of wall time on {result.executor} "
                f"(measuring included); one dense pass over the test set takes {result.dense_pass_seconds:.3f} s."
                + (f" The folder's points were trained for {epochs:.1f} epochs in {seconds:.0f} s in total."
                   if epochs else ""))
    text = (f"{result.points_run} {what} in {result.points_seconds:.2f} s; one dense pass over the test set "
            f"takes {result.dense_pass_seconds:.3f} s, so {result.points_run} dense passes would take {floor:.2f} s.")
    if result.measure_seconds:
        text += (f" Measuring file sizes and latencies took another {result.measure_seconds:.2f} s "
                 f"({torch.get_num_threads()} threads).")
    if epochs:
        text += f" The folder's points were trained for {epochs:.1f} epochs in {seconds:.0f} s in total."
    return text


def add_executor_options(parser: argparse.ArgumentParser) -> None:
    """``--executor``, ``--ray-address``, ``--ray-timeout``, ``--workers``, ``--cpus-per-job``, ``--gpus-per-job``."""
    group = parser.add_argument_group("where the jobs run")
    group.add_argument("--executor", choices=EXECUTORS, default="local",
                       help="local: one job at a time in this process; processes: worker processes of this "
                       "machine; ray: Ray tasks on a Ray cluster (pip install 'prunekit[ray]')")
    group.add_argument("--ray-address", default=None,
                       help="the Ray cluster to submit to (HOST:PORT or auto; default: $RAY_ADDRESS, else a new "
                       "cluster of this machine only)")
    group.add_argument("--ray-timeout", type=positive_float, default=None, metavar="SECONDS",
                       help="how long to wait for the Ray cluster at --ray-address (or $RAY_ADDRESS) to answer "
                       "before giving up with an error (default 30)")
    group.add_argument("--workers", type=positive_int, default=None,
                       help="jobs at a time (processes: default CPUs / --cpus-per-job; ray: default as many as the "
                       "cluster fits)")
    group.add_argument("--cpus-per-job", type=positive_int, default=None,
                       help="torch threads of every job, and the CPUs a Ray task reserves (default 1 in workers; "
                       "local: torch's choice). Equal threads give identical points on every executor")
    group.add_argument("--gpus-per-job", type=non_negative_float, default=0,
                       help="GPUs a Ray task reserves (jobs then run on cuda unless --device says otherwise)")
