"""Train a registered model on a dataset, evaluate it and save it: the baseline of every study.

Example:
    >>> import tempfile
    >>> from prunekit.training import TrainConfig
    >>> result = train_model("lenet300", dataset="mnist", config=TrainConfig(epochs=0.05), progress=False,
    ...                      out=tempfile.mkdtemp() + "/lenet")
    >>> result.metrics["test_accuracy"] > 0.5, result.path.name
    (True, 'lenet')
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import save_checkpoint
from ..data import load_dataset
from ..models import fit_to_data, get_model
from ..storage import check_output
from ..training import TrainConfig, evaluate, resolve_device, train


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
    dataset: Any = "mnist",
    data_dir: str | None = None,
    config: TrainConfig = TrainConfig(),
    out: str | Path | None = None,
    progress: bool = True,
    device: Any = None,
) -> TrainResult:
    """Build ``model_name`` with ``config.seed``, train it, evaluate it on the test set and,
    if ``out`` is given, save a checkpoint there (checked before training starts).

    Args:
        model_name: a registered model (``prunekit models`` lists them).
        model_args: builder arguments; the input size and class count of a registered model are filled
            from the data when not given (see :func:`~prunekit.models.fit_to_data`).
        dataset: a dataset name, user code ``FILE.py:FUNCTION``, or already loaded data.
        data_dir: where the dataset files are (see :func:`prunekit.data.load_dataset`).
        config: the training recipe; its seed also seeds the initial weights.
        out: checkpoint folder to write (``model.safetensors``, ``config.json``, ``metrics.json``).
        progress: show progress bars.
        device: where to train (``auto``: a GPU if there is one; ``cpu``, ``cuda[:N]``, ``mps``). The
            checkpoint is saved from the CPU, so it loads anywhere.

    Returns:
        A :class:`TrainResult` with ``metrics`` holding ``test_accuracy`` (a fraction),
        ``test_loss``, ``train_seconds``, ``epochs`` and the per-epoch ``history``.
    """
    if out is not None:
        check_output(out)
    data = dataset if not isinstance(dataset, str) else load_dataset(dataset, data_dir, progress=progress)
    model_args = fit_to_data(model_name, model_args or {}, data.input_shape, getattr(data, "num_classes", None))
    model = get_model(model_name, seed=config.seed, **model_args)
    started = time.perf_counter()
    target = resolve_device(device)
    history = train(model, data.split("train"), config, progress=progress, desc=f"train {model_name}",
                    device=target)
    seconds = time.perf_counter() - started
    test = evaluate(model, data.split("test"), precision=config.precision)
    metrics = {
        "test_accuracy": test.get("accuracy"), "test_loss": test["loss"], "train_seconds": seconds,
        "epochs": config.epochs, "threads": torch.get_num_threads(), "device": str(target), "history": history,
    }
    model.to("cpu")
    path = None
    if out is not None:
        path = save_checkpoint(out, model, model_name=model_name, model_args=model_args, metrics=metrics,
                               dataset=data.name, input_shape=list(data.input_shape) if data.input_shape else None,
                               seed=config.seed,
                               train=config.to_dict())
    return TrainResult(model, metrics, path)
