"""The sparsity sweep: prune a trained baseline at every (schedule, method, sparsity), evaluate, record.

A sweep trains its baseline once (or reuses one: a checkpoint passed in, whose model and dataset
it then uses, or the one it trained before with the same config, kept in
``OUT/baselines/<config hash>/``), then runs every (schedule, method) series from the baseline
weights (see :mod:`.series`). Every point is written to ``OUT/points/`` as soon as it is done;
``results.csv``/``results.json`` are rewritten after each point, and a rerun skips the points that
exist, so an interrupted sweep loses nothing already done (chained schedules resume from their
last finished level).

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
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..checkpoint import WEIGHTS_FILE, Checkpoint, load_checkpoint, read_config
from ..data import Dataset, load_dataset
from ..references import is_reference
from ..storage import check_output, file_digest
from ..training import resolve_device
from .baseline import train_model
from .config import REFERENCE_SPARSITIES, SweepConfig, sweep_config_dict  # noqa: F401  (re-exported)
from .flop_targets import sparsity_for_reduction
from .points import time_dense_pass, tracing_batch
from .results import write_tables
from .series import make_context, pending, run_series, series_cost


@dataclass
class SweepResult:
    """What a sweep produced: all points, the baseline, and the timings measured in this run."""

    points: list[dict[str, Any]]
    baseline: Checkpoint
    points_run: int
    points_seconds: float
    dense_pass_seconds: float
    out: Path
    config: SweepConfig  # as run: with the checkpoint's model and dataset
    measure_seconds: float = 0.0  # measuring file sizes and latencies, not in points_seconds


def prepare_baseline(config: SweepConfig, out: Path, data: Dataset, checkpoint: str | None,
                     progress: bool) -> tuple[Checkpoint, str]:
    """Load ``checkpoint``, or the baseline trained before with this config, or train it now.

    Returns the checkpoint and its id (hash of the weights file, or of the config).
    """
    source = config.model if is_reference(config.model) else None  # the user's model, given on this command
    if checkpoint is not None:
        return load_checkpoint(checkpoint, model_source=source), f"ckpt-{file_digest(Path(checkpoint) / WEIGHTS_FILE)}"
    fingerprint = config.baseline_fingerprint()
    folder = out / "baselines" / fingerprint
    if not (folder / "metrics.json").exists():
        train_model(config.resolved_model, model_args=config.model_args or None, dataset=data,
                    config=config.train, out=folder, progress=progress)
    return load_checkpoint(folder, model_source=source), fingerprint


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
) -> SweepResult:
    """Run (or resume) a sweep and write its results into ``out``.

    Every (schedule, method) series runs from the baseline; chained schedules checkpoint each
    level under ``out/chains/`` and resume from the last finished one after an interruption.

    Args:
        config: the sweep's :class:`SweepConfig`.
        out: the sweep folder (created).
        checkpoint: a baseline checkpoint folder to use instead of training one.
        data_dir: where the dataset files are.
        progress: show progress bars (overall: epochs of training left, round, sparsity, accuracy).
        on_point: called with every newly finished point (after it is written).
        measure: add ``file_bytes`` and latency ratios to dense (see
            :func:`prunekit.bench.measure_point`) to every point; timed apart.
        device: where to train and evaluate (``auto``, ``cpu``, ``cuda[:N]``, ``mps``; default: the CPU).
            File sizes and latencies are always measured on the CPU.

    Returns:
        A :class:`SweepResult`; ``results.csv``/``results.json`` are in ``out``.
    """
    out = check_output(out, inputs=[checkpoint] if checkpoint else [], allow_other_files=True)
    if checkpoint is not None:
        config = config.with_checkpoint(read_config(checkpoint), checkpoint)
    else:
        config = replace(config, model=config.resolved_model, dataset=config.resolved_dataset)
    data = load_dataset(config.dataset, data_dir, progress=progress)
    out.mkdir(parents=True, exist_ok=True)
    baseline, baseline_id = prepare_baseline(config, out, data, checkpoint, progress)
    if device is not None:
        baseline.model.to(resolve_device(device))
    dense_seconds = time_dense_pass(baseline.model, data.split("test"))
    if config.flop_reductions:
        config = replace(config, sparsities=resolve_flop_targets(config, baseline.model, data))
    ctx = make_context(baseline, baseline_id, data, out, schedules=config.schedules, recovery=config.recovery,
                       scopes={m: config.scope_for(m) for m in config.methods}, layers=config.layers,
                       include_output=config.include_output, progress=progress, on_point=on_point,
                       calibration_batches=config.calibration_batches, reconstruct=config.reconstruct,
                       measure=measure)
    series = [(s, m) for s in config.schedules for m in config.methods]
    targets = list(config.sparsities)
    cost = sum(series_cost(ctx, s, targets, pending(ctx, s, m, targets)) for s, m in series)
    started, run = time.perf_counter(), 0
    bar = tqdm(total=round(cost, 2), desc="sweep", unit="epoch", disable=None if progress else True,
               bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} epochs [{elapsed}<{remaining}{postfix}]")
    try:
        for schedule, method in series:
            run += run_series(ctx, schedule, method, targets, bar)
    finally:
        bar.close()
        baseline.model.load_state_dict(ctx.baseline_state)
    seconds = time.perf_counter() - started - ctx.measure_seconds
    points = ctx.store.all()
    write_tables(points, out)
    return SweepResult(points, baseline, run, seconds, dense_seconds, out, config, ctx.measure_seconds)


def resolve_flop_targets(config: SweepConfig, model, data: Dataset) -> tuple[float, ...]:
    """The sparsity of each of ``config.flop_reductions`` for its one method (see :mod:`.flop_targets`)."""
    method = config.methods[0]
    example = tracing_batch(model, method, data)
    shape = getattr(data, "input_shape", None)
    model = copy.deepcopy(model).cpu()
    return tuple(sparsity_for_reduction(model, method, r, scope=config.scope_for(method), layers=config.layers,
                                        input_shape=shape if example is None else None, example_inputs=example)
                 for r in config.flop_reductions)
