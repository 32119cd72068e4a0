"""The sparsity sweep: prune a trained baseline at every (method, sparsity), evaluate, record.

A sweep trains its baseline once (or reuses one: a checkpoint passed in, or the one it trained
before with the same config, kept in ``OUT/baselines/<config hash>/``), then runs every point
from a fresh copy of the baseline weights. Every point is written to ``OUT/points/`` as soon as
it is done; ``results.csv``/``results.json`` are rewritten after each point, and a rerun skips
the points that exist, so an interrupted sweep loses nothing already done.

Example:
    >>> result = run_sweep(SweepConfig(model="mlp"), "runs/reference")  # doctest: +SKIP
    >>> len(result.points)
    26
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from .checkpoint import Checkpoint, load_checkpoint
from .data import Dataset, load_dataset
from .errors import ConfigError
from .prune import METHODS, SCOPES, check_sparsity
from .results import ResultStore, point_key, write_tables
from .sweep_points import evaluate_oneshot, time_dense_pass
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
        scope: ``"layer"`` or ``"global"``.
        train: the baseline's training recipe.
    """

    model: str = "mlp"
    model_args: dict[str, Any] = field(default_factory=dict)
    dataset: str = "mnist"
    methods: tuple[str, ...] = ("weight", "unit")
    sparsities: tuple[float, ...] = REFERENCE_SPARSITIES
    scope: str = "layer"
    train: TrainConfig = TrainConfig()

    def __post_init__(self) -> None:
        for method in self.methods:
            if method not in METHODS:
                raise ConfigError(f"unknown pruning method {method!r}; choose from {', '.join(METHODS)}")
        if self.scope not in SCOPES:
            raise ConfigError(f"unknown scope {self.scope!r}; choose from {', '.join(SCOPES)}")
        if not self.methods or not self.sparsities:
            raise ConfigError("a sweep needs at least one method and one sparsity")
        object.__setattr__(self, "sparsities", tuple(sorted({check_sparsity(k) for k in self.sparsities})))

    def baseline_fingerprint(self) -> str:
        """A short hash of everything that determines the baseline's weights."""
        key = {"model": self.model, "model_args": self.model_args, "dataset": self.dataset,
               "train": self.train.to_dict()}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class SweepResult:
    """What a sweep produced: all points, the baseline, and the timings measured in this run."""

    points: list[dict[str, Any]]
    baseline: Checkpoint
    points_run: int
    points_seconds: float
    dense_pass_seconds: float
    out: Path


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
) -> SweepResult:
    """Run (or resume) a sweep and write its results into ``out``.

    Args:
        config: the sweep's :class:`SweepConfig`.
        out: the sweep folder (created).
        checkpoint: a baseline checkpoint folder to use instead of training one.
        data_dir: where the dataset files are.
        progress: show progress bars.
        on_point: called with every newly finished point (after it is written).

    Returns:
        A :class:`SweepResult`; ``results.csv``/``results.json`` are in ``out``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_dataset(config.dataset, data_dir, progress=progress)
    baseline, baseline_id = prepare_baseline(config, out, data, checkpoint, progress)
    store = ResultStore(out, baseline_id)
    x_test, y_test = data.split("test")
    todo = [(m, k) for m in config.methods for k in config.sparsities
            if not store.has(point_key("oneshot", m, config.scope, k))]
    dense_seconds = time_dense_pass(baseline.model, x_test)
    state = {k: v.clone() for k, v in baseline.model.state_dict().items()}
    started = time.perf_counter()
    bar = tqdm(todo, desc="sweep", unit="point", disable=None if progress else True, leave=False)
    for method, k in bar:
        point = evaluate_oneshot(baseline.model, state, method, k, config.scope, x_test, y_test)
        store.put(point)
        write_tables(store.all(), out)
        bar.set_postfix(method=method, k=f"{k:g}", acc=f"{point['test_accuracy']:.4f}", refresh=False)
        if on_point is not None:
            on_point(point)
    seconds = time.perf_counter() - started
    baseline.model.load_state_dict(state)
    points = store.all()
    write_tables(points, out)
    return SweepResult(points, baseline, len(todo), seconds, dense_seconds, out)


def sweep_config_dict(config: SweepConfig) -> dict[str, Any]:
    """The config as plain JSON-ready data."""
    return json.loads(json.dumps(asdict(config)))


def default_threads() -> int:
    return torch.get_num_threads()
