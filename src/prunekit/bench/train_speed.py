"""Training speed: seconds per epoch and samples per second, measured.

Example:
    >>> from prunekit.models import get_model
    >>> forward_flops(get_model("mlp"), (1, 28, 28))  # 2 x 2,386,000 multiply-adds
    4772000
"""

from __future__ import annotations

import statistics
from typing import Any

from ..data import load_dataset
from ..models import get_model
from ..prune.report import sparsity_report
from ..training import TrainConfig, train


def benchmark_training(
    model_name: str = "mlp",
    *,
    model_args: dict[str, Any] | None = None,
    epochs: int = 3,
    batch_size: int = 256,
    dataset: str = "mnist",
    data_dir: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``epochs`` epochs of the default recipe and report the median epoch time.

    FLOPs count a multiply-add as 2 and a training step as 3 forward passes (forward, and the
    two matrix products of the backward pass) of the model's Linear/Conv layers.
    """
    data = load_dataset(dataset, data_dir, progress=progress)
    x, y = data.split("train")
    model = get_model(model_name, seed=0, **(model_args or {}))
    history = train(model, (x, y), TrainConfig(epochs=epochs, batch_size=batch_size), progress=progress,
                    desc="bench train")
    seconds = [h["seconds"] for h in history]
    median = statistics.median(seconds)
    flops = 3 * forward_flops(model, tuple(x.shape[1:])) * len(x)
    return {
        "epochs": len(seconds), "epoch_seconds": seconds, "median_epoch_seconds": median,
        "samples_per_second": len(x) / median, "tflop_per_epoch": flops / 1e12, "gflops": flops / median / 1e9,
    }


def forward_flops(model, input_shape: tuple[int, ...]) -> int:
    """Dense FLOPs of one forward pass of one sample (Linear and Conv2d layers, multiply-add = 2)."""
    return int(sparsity_report(model, input_shape=(1, *input_shape)).total.dense_flops)
