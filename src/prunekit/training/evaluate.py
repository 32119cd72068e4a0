"""Evaluation: accuracy and mean cross-entropy of a classifier on in-memory data.

Example:
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    >>> metrics = evaluate(model, torch.zeros(6, 1, 2, 2), torch.tensor([0, 1, 0, 1, 0, 1]))
    >>> metrics["accuracy"]
    0.5
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@torch.inference_mode()
def evaluate(model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int = 2000) -> dict[str, float]:
    """Accuracy (a fraction) and mean cross-entropy loss of ``model`` on ``(x, y)``.

    """
    was_training = model.training
    model.eval()
    correct, loss_sum = 0, 0.0
    for start in range(0, len(x), batch_size):
        logits = model(x[start:start + batch_size])
        yb = y[start:start + batch_size]
        correct += (logits.argmax(1) == yb).sum().item()
        loss_sum += F.cross_entropy(logits, yb, reduction="sum").item()
    model.train(was_training)
    return {"accuracy": correct / len(x), "loss": loss_sum / len(x)}
