"""Evaluation of a model on any data form: accuracy (classifiers) and mean loss.

Example:
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    >>> metrics = evaluate(model, torch.zeros(6, 1, 2, 2), torch.tensor([0, 1, 0, 1, 0, 1]))
    >>> metrics["accuracy"]
    0.5
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from ..errors import ConfigError
from ..batches import as_source
from .device import model_device, precision_context, resolve_device
from .loop import LossFn, _correct, cross_entropy


@torch.inference_mode()
def evaluate(model: nn.Module, data: Any, labels: Optional[torch.Tensor] = None, *, batch_size: int = 2000,
             loss_fn: Optional[LossFn] = None, device: Any = None, precision: str = "fp32") -> dict[str, float]:
    """Mean loss and, for a classifier, accuracy (a fraction) of ``model`` on ``data``.

    Args:
        model: the model (eval mode during the call; its mode is restored).
        data: inputs ``x`` with ``labels``, or ``(x, y)`` tensors, a DataLoader, an iterable of batches or
            a torch Dataset (see :mod:`prunekit.batches`).
        labels: the labels when ``data`` is the input tensor.
        batch_size: batch size for in-memory tensors and Datasets.
        loss_fn: ``loss_fn(outputs, batch)``; default: the model's own loss, else cross-entropy.
        device: where to evaluate (default: where the model is).
        precision: ``fp32``, ``bf16`` or ``fp16`` autocast.

    Returns:
        ``{"loss": ..., "accuracy": ...}`` (``accuracy`` only for ``[N, C]`` logits with class labels).
    """
    target = resolve_device(device) if device is not None else model_device(model)
    model.to(target)
    if labels is not None:
        data = (data, labels)
    source = as_source(data, batch_size, seed=0, shuffle=False).to(target)
    loss_fn = loss_fn or cross_entropy()
    was_training = model.training
    model.eval()
    loss_sum, seen, correct, counted = 0.0, 0, 0, 0
    try:
        with precision_context(precision, target):
            for batch in source.epoch(0):
                batch = batch.to(target)
                outputs = model(*batch.args, **batch.kwargs)
                loss_sum += float(loss_fn(outputs, batch)) * batch.size
                seen += batch.size
                right, n = _correct(outputs, batch)
                correct, counted = correct + right, counted + n
    finally:
        model.train(was_training)
    if not seen:
        raise ConfigError("nothing to evaluate: the data is empty")
    metrics = {"loss": loss_sum / seen}
    if counted:
        metrics["accuracy"] = correct / counted
    return metrics
