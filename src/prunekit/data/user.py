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

from ..batches import first_batch
from ..errors import ConfigError
from ..references import call


class UserData:
    """A user's train and test data with what prunekit needs to know of it.

    Attributes:
        name: the reference it came from (recorded in checkpoints; never imported from there).
        input_shape: one sample's shape, from the first batch (``None`` for dict batches).
        num_classes: from in-memory labels (``None`` otherwise).
    """

    def __init__(self, name: str, train: Any, test: Any):
        self.name, self._splits = name, {"train": train, "test": test}
        self.in_memory = all(_tensors(v) for v in self._splits.values())
        self.input_shape = _input_shape(train)
        labels = train[1] if _tensors(train) else None
        self.num_classes: Optional[int] = int(labels.max()) + 1 if labels is not None and not labels.is_floating_point() \
            else None

    def split(self, which: str) -> Any:
        if which not in self._splits:
            raise ConfigError(f"unknown split {which!r}; expected 'train' or 'test'")
        return self._splits[which]

    def __repr__(self) -> str:
        return f"UserData({self.name!r}, input_shape={self.input_shape})"


def _tensors(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(t, torch.Tensor) for t in value)


def _input_shape(data: Any) -> Optional[tuple[int, ...]]:
    batch = first_batch(data)
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
