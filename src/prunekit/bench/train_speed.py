"""Training speed: seconds per epoch and samples per second, measured, for in-memory tensors (the fast
path: batches gathered by index) and for a standard ``DataLoader`` over the same tensors.

Example:
    >>> from prunekit.models import get_model
    >>> forward_flops(get_model("mlp"), (1, 28, 28))  # 2 x 2,386,000 multiply-adds
    4772000
"""

from __future__ import annotations

import statistics
from typing import Any, Sequence

import torch
from torch.utils.data import DataLoader, TensorDataset

from ..data import load_dataset
from ..errors import ConfigError
from ..models import get_model
from ..prune.report import sparsity_report
from ..training import TrainConfig, resolve_device, train

PATHS = ("memory", "loader")


def benchmark_training(
    model_name: str = "mlp",
    *,
    model_args: dict[str, Any] | None = None,
    epochs: int = 3,
    batch_size: int = 256,
    dataset: str = "mnist",
    data_dir: str | None = None,
    paths: Sequence[str] = PATHS,
    device: Any = None,
    precision: str = "fp32",
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Train ``epochs`` epochs of the default recipe on each data path and report the median epoch time.

    Args:
        paths: ``"memory"`` (``(x, y)`` tensors, the fast path) and/or ``"loader"`` (a shuffling
            ``DataLoader`` over a ``TensorDataset`` of the same tensors: the path users' data takes).
        device, precision: where and in which precision to train.

    Returns:
        ``{path: {"epochs", "epoch_seconds", "median_epoch_seconds", "samples_per_second",
        "tflop_per_epoch", "gflops"}}``. FLOPs count a multiply-add as 2 and a training step as 3
        forward passes of the model's Linear/Conv layers.
    """
    unknown = set(paths) - set(PATHS)
    if unknown or not paths:
        raise ConfigError(f"unknown data path(s) {sorted(unknown)}; choose from {', '.join(PATHS)}")
    data = load_dataset(dataset, data_dir, progress=progress)
    x, y = data.split("train")
    target = resolve_device(device)
    out = {}
    for path in paths:
        model = get_model(model_name, seed=0, **(model_args or {}))
        source = (x, y) if path == "memory" else DataLoader(
            TensorDataset(x, y), batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))
        history = train(model, source, TrainConfig(epochs=epochs, batch_size=batch_size, precision=precision),
                        progress=progress, desc=f"bench train ({path})", device=target)
        seconds = [h["seconds"] for h in history]
        median = statistics.median(seconds)
        flops = 3 * forward_flops(model.cpu(), tuple(x.shape[1:])) * len(x)
        out[path] = {"epochs": len(seconds), "epoch_seconds": seconds, "median_epoch_seconds": median,
                     "samples_per_second": len(x) / median, "tflop_per_epoch": flops / 1e12,
                     "gflops": flops / median / 1e9, "device": str(target)}
    return out


def forward_flops(model, input_shape: tuple[int, ...]) -> int:
    """Dense FLOPs of one forward pass of one sample (Linear and Conv2d layers, multiply-add = 2)."""
    return int(sparsity_report(model, input_shape=(1, *input_shape)).total.dense_flops)
