"""End-to-end steps that the CLI and the sweep share: train a registered model and save it.

Example:
    >>> result = train_model("mlp", config=TrainConfig(epochs=5), out="runs/mlp")  # doctest: +SKIP
    >>> result.metrics["test_accuracy"]  # doctest: +SKIP
    0.9853
"""

from __future__ import annotations

import hashlib
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .checkpoint import save_checkpoint
from .data import Dataset, load_dataset
from .models import get_model
from .schedules import (Job, PruneSpec, Recovery, checkpoint_rewind, fingerprint, get_schedule, planned_epochs,
                        run_schedule)
from .train import TrainConfig, evaluate, train


@dataclass
class TrainResult:
    """A trained model with what was measured of it."""

    model: nn.Module
    metrics: dict[str, Any]
    path: Path | None


def train_model(
    model_name: str,
    *,
    model_args: dict[str, Any] | None = None,
    dataset: str | Dataset = "mnist",
    data_dir: str | None = None,
    config: TrainConfig = TrainConfig(),
    out: str | Path | None = None,
    progress: bool = True,
) -> TrainResult:
    """Build ``model_name`` with ``config.seed``, train it, evaluate it on the test set and,
    if ``out`` is given, save a checkpoint there.

    Args:
        model_name: a registered model (``prunekit models`` lists them).
        model_args: builder arguments.
        dataset: a dataset name or an already loaded :class:`~prunekit.data.Dataset`.
        data_dir: where the dataset files are (see :func:`prunekit.data.load_dataset`).
        config: the training recipe; its seed also seeds the initial weights.
        out: checkpoint folder to write (``model.safetensors``, ``config.json``, ``metrics.json``).
        progress: show progress bars.

    Returns:
        A :class:`TrainResult` with ``metrics`` holding ``test_accuracy`` (a fraction),
        ``test_loss``, ``train_seconds``, ``epochs`` and the per-epoch ``history``.
    """
    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset, data_dir, progress=progress)
    model = get_model(model_name, seed=config.seed, **(model_args or {}))
    started = time.perf_counter()
    history = train(model, data.split("train"), config, progress=progress, desc=f"train {model_name}")
    seconds = time.perf_counter() - started
    test = evaluate(model, *data.split("test"))
    metrics = {
        "test_accuracy": test["accuracy"], "test_loss": test["loss"], "train_seconds": seconds,
        "epochs": config.epochs, "threads": torch.get_num_threads(), "history": history,
    }
    path = None
    if out is not None:
        path = save_checkpoint(
            out, model, model_name=model_name, model_args=model_args, metrics=metrics,
            dataset=data.name, seed=config.seed, train=config.to_dict(),
        )
    return TrainResult(model, metrics, path)


def prune_checkpoint(
    checkpoint: str | Path,
    *,
    method: str,
    sparsity: float,
    scope: str = "layer",
    layers: list[str] | None = None,
    out: str | Path,
    data_dir: str | None = None,
    progress: bool = True,
    schedule: str = "oneshot",
    recovery: Recovery | None = None,
) -> TrainResult:
    """Prune a saved model with a schedule, evaluate it on its dataset's test set and save it with its mask.

    Args:
        checkpoint: the checkpoint folder (a pruned one keeps its pruned entries pruned).
        method, sparsity, scope, layers: as for :func:`~prunekit.prune.prune_model`.
        out: the folder of the pruned checkpoint.
        data_dir: where the dataset files are.
        progress: show progress (round, sparsity, accuracy, time left).
        schedule: a name in :data:`~prunekit.schedules.SCHEDULES`; ``iterative`` and ``lottery``
            reach ``sparsity`` in rounds of at most ``recovery.round_fraction`` of the remaining weights.
        recovery: the recovery recipe (default :class:`~prunekit.schedules.Recovery`).

    Returns:
        A :class:`TrainResult`; ``metrics`` holds ``test_accuracy``, ``train_epochs``, ``train_seconds``
        and ``rounds`` (sparsity and accuracy after every level).

    Example:
        >>> prune_checkpoint("runs/mlp", method="weight", sparsity=90, out="runs/mlp-w90")  # doctest: +SKIP
        >>> prune_checkpoint("runs/mlp", method="unit", sparsity=90, schedule="lottery",
        ...                  out="runs/mlp-u90")  # doctest: +SKIP
    """
    from .checkpoint import load_checkpoint

    recovery = recovery or Recovery()
    spec = PruneSpec(method, scope, tuple(layers) if layers else None)
    get_schedule(schedule)  # fail before loading anything
    ckpt = load_checkpoint(checkpoint)
    data = load_dataset(ckpt.config.get("dataset", "mnist"), data_dir, progress=progress)
    test_data = data.split("test")
    dense = ckpt.metrics.get("test_accuracy")
    job = _schedule_job(ckpt, data, schedule, spec, recovery, progress)
    chain = Path(out) / ".chain"  # a chained schedule resumes here after an interruption
    run_id = fingerprint({"source": hashlib.sha256((ckpt.path / "model.safetensors").read_bytes()).hexdigest(),
                          "schedule": schedule, "spec": asdict(spec), "recipe": recovery.to_dict(), "k": sparsity})
    level, rounds = _run_with_progress(schedule, job, sparsity, test_data, progress, chain, run_id)
    test = evaluate(ckpt.model, *test_data)
    pruning = {"method": method, "sparsity": sparsity, "scope": scope, "layers": layers, "source": str(checkpoint),
               "schedule": schedule, "recovery": recovery.to_dict()}
    metrics = {"test_accuracy": test["accuracy"], "test_loss": test["loss"], "sparsity_actual": level.mask.sparsity(),
               "dense_test_accuracy": dense, "train_epochs": level.train_epochs,
               "train_seconds": level.train_seconds, "rounds": rounds}
    meta = {k: v for k, v in ckpt.config.items() if k not in ("format_version", "model", "versions", "pruning")}
    path = save_checkpoint(
        out, ckpt.model, model_name=ckpt.config["model"]["name"], model_args=ckpt.config["model"].get("args"),
        metrics=metrics, mask=level.mask, pruning=pruning, **meta,
    )
    shutil.rmtree(chain, ignore_errors=True)
    return TrainResult(ckpt.model, metrics, path)


def _schedule_job(ckpt, data: Dataset, schedule: str, spec: PruneSpec, recovery: Recovery, progress: bool) -> Job:
    trains = get_schedule(schedule).trains
    train_data = data.split("train") if trains else (torch.empty(0), torch.empty(0))
    rewind = checkpoint_rewind(ckpt.config, epoch=recovery.rewind_epoch, train_data=train_data, progress=progress)
    return Job(ckpt.model, train_data, spec, recovery, rewind=rewind, mask=ckpt.mask, progress=progress)


def _run_with_progress(schedule: str, job: Job, sparsity: float, test_data, progress: bool, chain: Path, run_id: str):
    """Run the schedule to ``sparsity``; a bar counts epochs and shows round, sparsity, accuracy.
    A chained schedule checkpoints every round in ``chain`` and resumes from there (the rounds
    listed then start at the resumed one)."""
    total = planned_epochs(schedule, job.recipe, [sparsity])
    bar = tqdm(total=total, desc=schedule, unit="epoch", disable=None if progress or total == 0 else True)
    level, rounds = None, []
    try:
        for level in run_schedule(schedule, job, [sparsity], chain_dir=chain, fingerprint=run_id):
            accuracy = evaluate(job.model, *test_data)["accuracy"]
            rounds.append({"round": level.index, "sparsity": level.sparsity, "test_accuracy": accuracy,
                           "train_epochs": level.train_epochs})
            bar.update(level.train_epochs - bar.n)
            bar.set_postfix(round=level.index, sparsity=f"{level.sparsity:.2f}", acc=f"{accuracy:.4f}")
    finally:
        bar.close()
    return level, rounds
