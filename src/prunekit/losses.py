"""Losses of any model's outputs: the model's own loss, or cross-entropy of its logits.

Example:
    >>> import torch
    >>> from prunekit.batches import Batch
    >>> loss = cross_entropy()(torch.zeros(2, 4), Batch((), labels=torch.tensor([0, 3])))
    >>> round(loss.item(), 4)  # ln 4
    1.3863
"""

from __future__ import annotations

from typing import Any, Callable

import torch.nn.functional as F
from torch import Tensor

from .batches import Batch
from .errors import ConfigError

LossFn = Callable[[Any, Batch], Tensor]
"""``loss_fn(outputs, batch) -> scalar``: ``outputs`` is what the model returned, ``batch`` a
:class:`~prunekit.batches.Batch` (``batch.labels``...). The default is the model's own loss
when it returns one (Hugging Face with labels), else cross-entropy of the logits against the labels."""


def logits_of(outputs: Any) -> Tensor:
    """The logits in a model's outputs: the tensor itself, ``.logits``, or the first tensor of a tuple."""
    if isinstance(outputs, Tensor):
        return outputs
    logits = getattr(outputs, "logits", None)
    if isinstance(logits, Tensor):
        return logits
    if isinstance(outputs, (tuple, list)) and outputs and isinstance(outputs[0], Tensor):
        return outputs[0]
    raise ConfigError(f"cannot find logits in the model's output ({type(outputs).__name__}); pass loss_fn=")


def cross_entropy(label_smoothing: float = 0.0) -> LossFn:
    """The default loss: the model's own ``.loss`` if it returns one, else cross-entropy against the labels."""

    def loss(outputs: Any, batch: Batch) -> Tensor:
        own = getattr(outputs, "loss", None)
        if isinstance(own, Tensor):
            return own
        if batch.labels is None:
            raise ConfigError("the batch has no labels for the classifier loss: give batches of (inputs, labels), "
                              "a dict with 'labels', or pass loss_fn=")
        logits = logits_of(outputs)
        if logits.dim() > 2 and batch.labels.dim() == logits.dim() - 1:  # per-token labels
            return F.cross_entropy(logits.flatten(0, -2), batch.labels.flatten(), label_smoothing=label_smoothing)
        return F.cross_entropy(logits, batch.labels, label_smoothing=label_smoothing)

    return loss


def causal_lm_loss() -> LossFn:
    """Next-token cross-entropy of a causal language model: the logits at position ``t`` predict the label at
    ``t + 1`` (the labels are the input ids; a label of -100 is ignored, as in transformers).

    Example:
        >>> import torch
        >>> ids = torch.tensor([[1, 2, 3]])
        >>> logits = torch.nn.functional.one_hot(torch.tensor([[2, 3, 0]]), 4).float() * 50
        >>> round(causal_lm_loss()(logits, Batch((ids,), labels=ids)).item(), 6)  # each next token predicted
        0.0
    """

    def loss(outputs: Any, batch: Batch) -> Tensor:
        if batch.labels is None:
            raise ConfigError("a causal language model trains on batches whose labels are its input ids")
        logits = logits_of(outputs)
        return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), batch.labels[:, 1:].flatten(), ignore_index=-100)

    return loss
