"""The sparsity sweep: prune a trained baseline at every (schedule, method, sparsity), evaluate, record.

A sweep trains its baseline once (or reuses one: a checkpoint passed in, or the one it trained
before with the same config, kept in ``OUT/baselines/<config hash>/``), then runs every
(schedule, method) series from the baseline weights (see :mod:`prunekit.sweep_series`). Every
point is written to ``OUT/points/`` as soon as it is done; ``results.csv``/``results.json`` are
rewritten after each point, and a rerun skips the points that exist, so an interrupted sweep
loses nothing already done (chained schedules resume from their last finished level).

Example:
    >>> result = run_sweep(SweepConfig(model="mlp"), "runs/reference")  # doctest: +SKIP
    >>> len(result.points)  # doctest: +SKIP
    26
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from tqdm.auto import tqdm

from .checkpoint import Checkpoint, load_checkpoint
from .data import Dataset, load_dataset
from .errors import ConfigError
from .prune import METHODS, SCOPES, check_sparsity
from .results import write_tables
from .schedules import Recovery
from .sweep_points import time_dense_pass
from .sweep_series import make_context, pending, resolve_series, run_series, series_cost
from .train import TrainConfig
from .workflows import train_model

REFERENCE_SPARSITIES = (0.0, 25.0, 50.0, 60.0, 70.0, 75.0, 80.0, 85.0, 90.0, 92.5, 95.0, 97.5, 99.0)
"""The reference study's sparsities, in percent."""


@dataclass(frozen=True)
class SweepConfig:
    """What a sweep covers.

    Args:
        model: registered model name of the baseline.
        model_args: its builder arguments.
        dataset: ``"mnist"`` or ``"fashion-mnist"``.
        methods: pruning methods (``"weight"``, ``"unit"``).
        sparsities: percentages in ``[0, 100)``.
        scope: ``"layer"`` or ``"global"`` for every method, or one per method as
            ``"weight=global,unit=layer"`` (see :meth:`scope_for`).
        train: the baseline's training recipe.
        schedules: pruning schedules (see :data:`prunekit.schedules.SCHEDULES`); a name may end in
            ``+distill`` to distil in that series only (e.g. ``iterative,iterative+distill``).
        recovery: how the schedules recover accuracy (:class:`~prunekit.schedules.Recovery`).
        layers: ``fnmatch`` patterns of the layers to prune (default: all prunable ones).
    """

    model: str = "mlp"
    model_args: dict[str, Any] = field(default_factory=dict)
    dataset: str = "mnist"
    methods: tuple[str, ...] = ("weight", "unit")
    sparsities: tuple[float, ...] = REFERENCE_SPARSITIES
    scope: str = "layer"
    train: TrainConfig = TrainConfig()
    schedules: tuple[str, ...] = ("oneshot",)
    recovery: Recovery = field(default_factory=Recovery)
    layers: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not self.schedules:
            raise ConfigError("a sweep needs at least one schedule")
        for name in self.schedules:
            resolve_series(name, self.recovery)
        object.__setattr__(self, "schedules", tuple(dict.fromkeys(self.schedules)))
        for method in self.methods:
            if method not in METHODS:
                raise ConfigError(f"unknown pruning method {method!r}; choose from {', '.join(METHODS)}")
        for method in self.methods:
            self.scope_for(method)
        if not self.methods or not self.sparsities:
            raise ConfigError("a sweep needs at least one method and one sparsity")
        object.__setattr__(self, "sparsities", tuple(sorted({check_sparsity(k) for k in self.sparsities})))

    def scope_for(self, method: str) -> str:
        """The scope ``method`` is pruned with.

        Example:
            >>> SweepConfig(scope="weight=global,unit=layer").scope_for("weight")
            'global'
        """
        return parse_scope(self.scope, method)

    def baseline_fingerprint(self) -> str:
        """A short hash of everything that determines the baseline's weights."""
        key = {"model": self.model, "model_args": self.model_args, "dataset": self.dataset,
               "train": self.train.to_dict()}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def parse_scope(scope: str, method: str) -> str:
    """``"global"`` -> ``"global"``; ``"weight=global,unit=layer"`` -> the given method's
    scope (``"layer"`` for a method not named)."""
    if "=" in scope:
        pairs = dict(item.strip().partition("=")[::2] for item in scope.split(",") if item.strip())
        unknown = [m for m in pairs if m not in METHODS]
        if unknown:
            raise ConfigError(f"unknown pruning method {unknown[0]!r} in scope {scope!r}; "
                              f"methods: {', '.join(METHODS)}")
        chosen = pairs.get(method, "layer")
    else:
        chosen = scope
    if chosen not in SCOPES:
        raise ConfigError(f"unknown scope {chosen!r} in {scope!r}; choose from {', '.join(SCOPES)}, "
                          "or one per method as weight=global,unit=layer")
    return chosen


@dataclass
class SweepResult:
    """What a sweep produced: all points, the baseline, and the timings measured in this run."""

    points: list[dict[str, Any]]
    baseline: Checkpoint
    points_run: int
    points_seconds: float
    dense_pass_seconds: float
    out: Path
    measure_seconds: float = 0.0  # measuring file sizes and latencies, not in points_seconds


def prepare_baseline(config: SweepConfig, out: Path, data: Dataset, checkpoint: str | None,
                     progress: bool) -> tuple[Checkpoint, str]:
    """Load ``checkpoint``, or the baseline trained before with this config, or train it now.

    Returns the checkpoint and its id (hash of the weights file, or of the config).
    """
    if checkpoint is not None:
        ckpt = load_checkpoint(checkpoint)
        digest = hashlib.sha256((Path(checkpoint) / "model.safetensors").read_bytes()).hexdigest()[:12]
        return ckpt, f"ckpt-{digest}"
    fingerprint = config.baseline_fingerprint()
    folder = out / "baselines" / fingerprint
    if not (folder / "metrics.json").exists():
        train_model(config.model, model_args=config.model_args or None, dataset=data, config=config.train,
                    out=folder, progress=progress)
    return load_checkpoint(folder), fingerprint


def run_sweep(
    config: SweepConfig,
    out: str | Path,
    *,
    checkpoint: str | None = None,
    data_dir: str | None = None,
    progress: bool = True,
    on_point: Callable[[dict[str, Any]], None] | None = None,
    measure: bool = True,
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

    Returns:
        A :class:`SweepResult`; ``results.csv``/``results.json`` are in ``out``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_dataset(config.dataset, data_dir, progress=progress)
    baseline, baseline_id = prepare_baseline(config, out, data, checkpoint, progress)
    dense_seconds = time_dense_pass(baseline.model, data.split("test")[0])
    ctx = make_context(baseline, baseline_id, data, out, schedules=config.schedules, recovery=config.recovery,
                       scopes={m: config.scope_for(m) for m in config.methods}, layers=config.layers,
                       progress=progress, on_point=on_point, measure=measure)
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
    return SweepResult(points, baseline, run, seconds, dense_seconds, out, ctx.measure_seconds)


def sweep_config_dict(config: SweepConfig) -> dict[str, Any]:
    """The config as plain JSON-ready data."""
    return json.loads(json.dumps(asdict(config)))
