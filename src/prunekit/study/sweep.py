"""The sparsity sweep: prune a trained baseline at every (schedule, method, sparsity), evaluate, record.

A sweep trains its baseline once (or reuses one: a checkpoint passed in, whose model and dataset
it then uses, or the one it trained before with the same config, kept in
``OUT/baselines/<config hash>/``), then runs every (schedule, method) series from the baseline
weights (see :mod:`.series`), as jobs (:mod:`.jobs`) that an executor runs here, in worker processes
or on a Ray cluster (:mod:`.executors`). With several seeds, each replicate has its own baseline.
Every point is written to ``OUT/points/`` as soon as it is done; ``results.csv``/``results.json`` are
rewritten after each point, and a rerun skips the points that exist, so an interrupted sweep loses
nothing already done (chained schedules resume from their last finished level). A sweep with other
settings into the same ``OUT`` (another recipe, ``layers``, baseline...) moves the points of the series it
recomputes into ``OUT/other-settings/`` first, and a sweep with the first settings brings them back
(:func:`~.results.keep_apart`).

Example:
    >>> import tempfile
    >>> from prunekit.training import TrainConfig
    >>> config = SweepConfig(model="lenet300", methods=("weight",), sparsities=(0, 90), train=TrainConfig(epochs=0.05))
    >>> result = run_sweep(config, tempfile.mkdtemp(), progress=False, measure=False)
    >>> [(p["sparsity_target"], p["test_accuracy"] > 0.5) for p in result.points]
    [(0.0, True), (90.0, True)]
"""

from __future__ import annotations

import copy
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..checkpoint import WEIGHTS_FILE, Checkpoint, read_config
from ..data import Dataset, load_dataset
from ..errors import ConfigError
from ..storage import check_output, claim_output, file_digest, mark_output
from ..plan import plan_reach, solver_structure, sparsity_for_reduction
from ..training import resolve_device
from .config import REFERENCE_SPARSITIES, SweepConfig, sweep_config_dict  # noqa: F401  (re-exported)
from .executors import Executor
from .jobs import (BaselineJob, JobResult, SweepJob, build_context, load_baseline, plan_jobs, run_in_context, run_job,
                   series_of, train_baseline)
from .points import time_dense_pass, tracing_batch
from .results import OTHER_SETTINGS, keep_apart, point_order, write_tables
from .series import series_id


@dataclass
class SweepResult:
    """What a sweep produced: all points, the baseline(s), and the timings measured in this run."""

    points: list[dict[str, Any]]
    baseline: Checkpoint  # the first replicate's
    points_run: int
    points_seconds: float  # wall time of the points, less measuring when it ran in this process
    dense_pass_seconds: float
    out: Path
    config: SweepConfig  # as run: with the checkpoint's model and dataset
    measure_seconds: float = 0.0  # measuring file sizes and latencies (summed over jobs)
    baseline_accuracies: dict[int | None, float] = field(default_factory=dict)  # per replicate seed
    executor: str = "the local executor (one process)"
    parallel: bool = False  # jobs ran in other processes: points_seconds is wall time, measuring included


def prepare_baselines(config: SweepConfig, out: Path, data: Dataset, checkpoint: str | None, *, progress: bool,
                      executor: Executor, data_dir: str | None) -> dict[int | None, tuple[Checkpoint, str, str]]:
    """Every replicate's baseline: ``{seed: (checkpoint, id, folder)}``.

    Loads ``checkpoint``, or the baselines trained before with the same config (in
    ``out/baselines/<config hash>/``), training the missing ones (in parallel on a parallel executor).
    The id is the hash of the weights file of a given checkpoint, or of the config.
    """
    if checkpoint is not None:
        return {None: (load_baseline(config, checkpoint), f"ckpt-{file_digest(Path(checkpoint) / WEIGHTS_FILE)}",
                       str(checkpoint))}
    folders = {seed: out / "baselines" / config.for_seed(seed).baseline_fingerprint() for seed in config.replicates}
    missing = [BaselineJob(config.for_seed(seed), str(folder), data_dir, executor.cpus_per_job,
                           executor.job_device(None))
               for seed, folder in folders.items() if not (folder / "metrics.json").exists()]
    if executor.in_process:
        for job in missing:
            train_baseline(job, data, progress)
    else:
        for _ in executor.run(train_baseline, missing):
            pass
    return {seed: (load_baseline(config, folder), config.for_seed(seed).baseline_fingerprint(), str(folder))
            for seed, folder in folders.items()}


SWEEP_OUTPUTS = ("results.csv", "results.json", "summary.csv", "summary.json", "REPORT.md", "accuracy_vs_*.png",
                 "points", "chains", "baselines", OTHER_SETTINGS)
"""What a sweep writes into its folder (it refuses a folder holding one of these that it did not write)."""


def run_sweep(
    config: SweepConfig,
    out: str | Path,
    *,
    checkpoint: str | None = None,
    data_dir: str | None = None,
    progress: bool = True,
    on_point: Callable[[dict[str, Any]], None] | None = None,
    measure: bool = True,
    device: Any = None,
    executor: Executor | None = None,
) -> SweepResult:
    """Run (or resume) a sweep and write its results into ``out``.

    Every (schedule, method) series runs from the baseline; chained schedules checkpoint each
    level under ``out/chains/`` and resume from the last finished one after an interruption.
    With ``config.seeds``, every replicate has its own baseline and points (they carry ``seed``).

    Args:
        config: the sweep's :class:`SweepConfig`.
        out: the sweep folder (created).
        checkpoint: a baseline checkpoint folder to use instead of training one.
        data_dir: where the dataset files are.
        progress: show a progress bar (points done of the sweep's total, with the time left).
        on_point: called with every newly finished point (after it is written).
        measure: add ``file_bytes`` and latency ratios to dense (see
            :func:`prunekit.bench.measure_point`) to every point; timed apart.
        device: where to train and evaluate (``auto``, ``cpu``, ``cuda[:N]``, ``mps``; default: the CPU).
            File sizes and latencies are always measured on the CPU.
        executor: where jobs run (:func:`~.executors.make_executor`; default: this process, one job at a
            time). The same seeds give the same points with every executor.

    Returns:
        A :class:`SweepResult`; ``results.csv``/``results.json`` are in ``out``.
    """
    out = check_output(out, inputs=[checkpoint] if checkpoint else [], allow_other_files=True)
    claim_output(out, "sweep", SWEEP_OUTPUTS, earlier="points")
    if checkpoint is not None:
        if config.seeds:
            raise ConfigError("seeds train one baseline per seed, but a sweep of a given checkpoint has one "
                              "baseline: leave --seeds or --checkpoint out")
        config = config.with_checkpoint(read_config(checkpoint), checkpoint)
    else:
        config = replace(config, model=config.resolved_model, dataset=config.resolved_dataset)
    data = load_dataset(config.dataset, data_dir, progress=progress)
    shared = os.environ.get("PRUNEKIT_DATA")  # workers find the data where this process did
    data_dir = data_dir or (shared if shared and Path(shared).is_dir() else None)
    mark_output(out, "sweep")
    executor = executor or Executor()
    with executor:
        baselines = prepare_baselines(config, out, data, checkpoint, progress=progress, executor=executor,
                                      data_dir=data_dir)
        first = baselines[config.replicates[0]][0]
        here = device if executor.in_process else None  # where this process evaluates; jobs get `device`
        device = executor.job_device(device)
        if here is not None:
            first.model.to(resolve_device(here))
        dense_seconds = time_dense_pass(first.model, data.split("test"))
        config = resolve_targets(config, first, data)
        contexts = {seed: build_context(config.for_seed(seed), ckpt, bid, data, out, seed=seed,
                                        progress=progress and executor.in_process, measure=measure, device=here)
                    for seed, (ckpt, bid, _) in baselines.items()}
        moved = keep_apart(out, _config_ids(contexts, config))
        if moved and progress:
            print(f"{moved} points of {out} were computed with other settings: moved to {out / OTHER_SETTINGS}/ "
                  "(a sweep with those settings brings them back)", file=sys.stderr)
        jobs = [job for seed, (_, _, folder) in baselines.items()
                for job in plan_jobs(contexts[seed], config.for_seed(seed), baseline=folder, data_dir=data_dir,
                                     measure=measure, device=device, threads=executor.cpus_per_job)]
        total = sum(len(config.sparsities) * len(series_of(contexts[seed], config)) for seed in contexts)
        run, started, measured = _run_jobs(executor, jobs, total, contexts, out, progress, on_point)
        wall, where = time.perf_counter() - started, executor.describe()
    points = _all_points(contexts)
    write_tables(points, out)
    return SweepResult(points, first, run, wall - (measured if executor.in_process else 0.0), dense_seconds, out,
                       config, measured, {seed: b[0].metrics.get("test_accuracy") for seed, b in baselines.items()},
                       where, not executor.in_process)


def _run_jobs(executor: Executor, jobs: list[SweepJob], total: int, contexts: dict, out: Path, progress: bool,
              on_point: Callable | None) -> tuple[int, float, float]:
    """Run the jobs with one progress bar of the sweep's ``total`` points (those stored before count as
    done); returns points run, the start time and seconds measuring."""
    stored = {_key(p) for p in _all_points(contexts)}
    left = sum(job.points for job in jobs)
    bar = tqdm(total=max(total, left), initial=max(total, left) - left, desc="sweep", unit="point",
               disable=None if progress else True)
    run, measured = 0, 0.0

    def finished(point: dict[str, Any], tables: bool = True) -> None:
        nonlocal run
        run += 1
        stored.add(_key(point))
        if tables:
            write_tables(_all_points(contexts), out)
        bar.update(1)
        bar.set_postfix({"schedule": point["schedule"], "method": point["method"],
                         "sparsity": f"{point['sparsity_target']:g}%", "acc": f"{point['test_accuracy']:.4f}"})
        if on_point is not None:
            on_point(point)

    local = partial(_run_here, contexts, finished)
    started = time.perf_counter()
    try:
        for job, result in executor.run(local if executor.in_process else run_job, jobs):
            measured += result.measure_seconds
            if not executor.in_process:  # every point stored since, a retried task's first attempt's too
                points = _all_points(contexts)
                for point in [p for p in points if _key(p) not in stored]:
                    finished(point, tables=False)
                write_tables(points, out)
    finally:
        bar.close()
        for ctx in contexts.values():
            ctx.model.load_state_dict(ctx.baseline_state)
    return run, started, measured


def _config_ids(contexts: dict, config: SweepConfig) -> dict[tuple, str]:
    """``(schedule, method, scope, seed) -> config_id`` of every series the sweep runs (see :mod:`.series`)."""
    return {(label, method, ctx.specs[method].scope, seed): series_id(ctx, name, method, list(config.sparsities))
            for seed, ctx in contexts.items() for name, label, method in series_of(ctx, config)}


def _key(point: dict[str, Any]) -> tuple:
    """A point's identity: where it sits in the sweep, and the config that computed it."""
    return point_order(point), point.get("config_id")


def _run_here(contexts: dict, on_point: Callable, job: SweepJob) -> JobResult:
    return run_in_context(contexts[job.seed], job, on_point)


def _all_points(contexts: dict) -> list[dict[str, Any]]:
    return sorted((p for ctx in contexts.values() for p in ctx.store.all()), key=point_order)


def resolve_targets(config: SweepConfig, first: Checkpoint, data: Dataset) -> SweepConfig:
    """``config`` with its targets solved on the (first) baseline: FLOP reductions as sparsities
    (:mod:`prunekit.plan.flops`), a per-layer plan with the sparsity it reaches (:mod:`prunekit.plan.reach`)."""
    if config.flop_reductions:
        config = replace(config, sparsities=resolve_flop_targets(config, first.model, data))
    if config.plan is not None and config.plan_sparsity is None:
        method = config.methods[0]
        structure = solver_structure(first.model, tracing_batch(first.model, method, data))
        reach = plan_reach(first.model, config.prune_spec(method), dict(config.plan), structure, first.mask)
        config = replace(config, plan_sparsity=reach)
    return config


def resolve_flop_targets(config: SweepConfig, model, data: Dataset) -> tuple[float, ...]:
    """The sparsity of each of ``config.flop_reductions`` for its one method (see :mod:`prunekit.plan.flops`)."""
    method = config.methods[0]
    example = tracing_batch(model, method, data)
    shape = getattr(data, "input_shape", None)
    model = copy.deepcopy(model).cpu()
    return tuple(sparsity_for_reduction(model, config.prune_spec(method), r, example_inputs=example,
                                        input_shape=shape if example is None else None)
                 for r in config.flop_reductions)
