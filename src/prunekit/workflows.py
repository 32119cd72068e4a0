"""End-to-end steps that the CLI and the sweep share: train a registered model and save it.

Example:
    >>> result = train_model("mlp", config=TrainConfig(epochs=5), out="runs/mlp")  # doctest: +SKIP
    >>> result.metrics["test_accuracy"]  # doctest: +SKIP
    0.9853
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import save_checkpoint
from .data import Dataset, load_dataset
from .models import get_model
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
) -> TrainResult:
    """Prune a saved model one-shot, evaluate it on its dataset's test set and save it with its mask.

    Example:
        >>> prune_checkpoint("runs/mlp", method="weight", sparsity=90, out="runs/mlp-w90")  # doctest: +SKIP
    """
    from .checkpoint import load_checkpoint
    from .prune import check_sparsity, prune_model

    check_sparsity(sparsity)  # fail before any loading
    ckpt = load_checkpoint(checkpoint)
    mask = prune_model(ckpt.model, method, sparsity, scope=scope, layers=layers, mask=ckpt.mask)
    data = load_dataset(ckpt.config.get("dataset", "mnist"), data_dir, progress=progress)
    test = evaluate(ckpt.model, *data.split("test"))
    pruning = {"method": method, "sparsity": sparsity, "scope": scope, "layers": layers, "source": str(checkpoint)}
    metrics = {"test_accuracy": test["accuracy"], "test_loss": test["loss"], "sparsity_actual": mask.sparsity(),
               "dense_test_accuracy": ckpt.metrics.get("test_accuracy")}
    meta = {k: v for k, v in ckpt.config.items() if k not in ("format_version", "model", "versions", "pruning")}
    path = save_checkpoint(
        out, ckpt.model, model_name=ckpt.config["model"]["name"], model_args=ckpt.config["model"].get("args"),
        metrics=metrics, mask=mask, pruning=pruning, **meta,
    )
    return TrainResult(ckpt.model, metrics, path)
