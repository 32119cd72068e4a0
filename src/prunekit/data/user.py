"""Datasets from user code: ``FILE.py:FUNCTION`` returning ``(train, test)``, each a torch ``Dataset``, a
``DataLoader`` (or any iterable of batches), or ``(x, y)`` tensors.

Example:
    >>> import torch
    >>> data = UserData("mine", (torch.randn(8, 3), torch.arange(8) % 2), (torch.randn(4, 3), torch.arange(4) % 2))
    >>> data.input_shape, data.num_classes, data.in_memory
    ((3,), 2, True)
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from ..batches import Batch, first_batch
from ..errors import ConfigError, DataError
from ..references import call

LABEL_DTYPES = (torch.int64, torch.uint8)
"""The dtypes cross-entropy takes as class indices."""
IGNORE_INDEX = -100
"""The label cross-entropy ignores (padding of per-token labels); the only negative label allowed."""


class UserData:
    """A user's train and test data with what prunekit needs to know of it.

    Both splits are checked when it is made (see :func:`check_split`).

    Attributes:
        name: the reference it came from (recorded in checkpoints; never imported from there).
        input_shape: one sample's shape, from the first batch (``None`` for dict batches).
        num_classes: from in-memory labels (``None`` otherwise).
    """

    def __init__(self, name: str, train: Any, test: Any):
        self.name, self._splits = name, {"train": train, "test": test}
        self.in_memory = all(_tensors(v) for v in self._splits.values())
        shapes = {which: _input_shape(check_split(name, which, data)) for which, data in self._splits.items()}
        if None not in shapes.values() and shapes["train"] != shapes["test"]:
            raise DataError(f"{name}: test samples have shape {shapes['test']}, train samples {shapes['train']}; "
                            f"both splits must hold inputs of the same shape")
        self.input_shape = shapes["train"]
        self.num_classes: Optional[int] = int(train[1].max()) + 1 if _tensors(train) else None
        if self.num_classes is not None and _tensors(test) and int(test[1].max()) >= self.num_classes:
            raise DataError(f"{name}: test labels go up to {int(test[1].max())} but train labels only to "
                            f"{self.num_classes - 1}; a model built for the train labels has no output for them")

    def split(self, which: str) -> Any:
        if which not in self._splits:
            raise ConfigError(f"unknown split {which!r}; expected 'train' or 'test'")
        return self._splits[which]

    def __repr__(self) -> str:
        return f"UserData({self.name!r}, input_shape={self.input_shape})"


def check_split(reference: str, which: str, data: Any) -> Batch:
    """Refuse a split the training loop cannot use, naming ``reference``; returns its first batch.

    In-memory ``(x, y)`` tensors are checked whole, other data by its first batch: inputs must be finite,
    labels of ``(inputs, labels)`` batches int64 class indices >= 0 (dict batches keep theirs: the model's
    own loss reads them).

    Raises:
        DataError: naming the reference, the split and the values at fault.
    """
    if not _tensors(data):
        batch = first_batch(data)
        _check_batch(f"{reference}: the first {which} batch", batch)
        return batch
    x, y = data
    if x.dim() == 0 or y.dim() == 0 or len(x) != len(y) or len(x) == 0:
        raise DataError(f"{reference}: the {which} split must be non-empty (x, y) tensors with one label per input, "
                        f"got shapes {tuple(x.shape)} and {tuple(y.shape)}")
    _check_batch(f"{reference}: the {which} split", Batch((x,), {}, y))
    return first_batch(data)


def _check_batch(where: str, batch: Batch) -> None:
    inputs = [*batch.args, *(v for k, v in batch.kwargs.items() if k != "labels")]
    for tensor in inputs:
        if isinstance(tensor, Tensor) and tensor.is_floating_point() and not torch.isfinite(tensor.sum()):
            bad = ~torch.isfinite(tensor)
            if bad.any():
                first = int(bad.reshape(len(tensor), -1).any(1).nonzero()[0]) if tensor.dim() else 0
                raise DataError(f"{where} holds {int(bad.sum()):,} NaN or infinite input value(s) (the first in "
                                f"sample {first}); clean or drop those samples")
    if batch.labels is not None and not batch.kwargs:
        _check_labels(where, batch.labels)


def _check_labels(where: str, labels: Any) -> None:
    if not isinstance(labels, Tensor) or labels.dtype not in LABEL_DTYPES:
        kind = str(labels.dtype).removeprefix("torch.") if isinstance(labels, Tensor) else type(labels).__name__
        such = f" such as {[round(v, 4) for v in labels.flatten()[:3].tolist()]}" if isinstance(labels, Tensor) else ""
        raise DataError(f"{where} has {kind} labels{such}; labels must be class indices, an int64 tensor "
                        f"(convert whole-number labels with .long())")
    bad = labels[(labels < 0) & (labels != IGNORE_INDEX)]
    if bad.numel():
        raise DataError(f"{where} has {bad.numel():,} negative label(s) such as {bad.unique()[:3].tolist()}; labels "
                        f"must be class indices 0, 1, 2, ... (or {IGNORE_INDEX}, ignored)")


def _tensors(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(t, torch.Tensor) for t in value)


def _input_shape(batch: Batch) -> Optional[tuple[int, ...]]:
    if len(batch.args) == 1 and isinstance(batch.args[0], torch.Tensor) and not batch.kwargs:
        return tuple(batch.args[0].shape[1:])
    return None


def load_user_data(reference: str, **kwargs: Any) -> UserData:
    """Call the user's dataset function and check that it returned ``(train, test)``."""
    result = call(reference, "dataset function", **kwargs)
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise ConfigError(f"{reference} must return (train, test): two Datasets, DataLoaders or (x, y) tensor pairs; "
                          f"got {type(result).__name__}")
    return UserData(reference, *result)
