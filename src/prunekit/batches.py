"""Data in any form, seen one batch at a time.

* Example inputs of any model: a tensor, a tuple of positional arguments, or a dict of keyword
  arguments (the Hugging Face convention); batches of other sizes made from one.
* Training and evaluation data: in-memory ``(x, y)`` tensors (the fast path, batched by index), a
  ``DataLoader`` or any iterable of batches, or a ``torch.utils.data.Dataset``. A batch is a tensor
  (inputs only), a tuple or list ``(inputs..., labels)`` (``model(*inputs)``), or a dict
  (``model(**batch)``, labels under ``"labels"``).

Example:
    >>> import torch
    >>> as_args({"input_ids": torch.zeros(2, 8, dtype=torch.long)})[1]["input_ids"].shape
    torch.Size([2, 8])
    >>> resize_batch(torch.arange(6).reshape(2, 3), 5)[:, 0].tolist()
    [0, 3, 0, 3, 0]
    >>> make_inputs((1, 28, 28))(4)[0][0].shape
    torch.Size([4, 1, 28, 28])
    >>> source = as_source((torch.randn(10, 3), torch.arange(10) % 2), batch_size=4, seed=0)
    >>> len(source), [b.size for b in source.epoch(0)]
    (3, [4, 4, 2])
    >>> to_batch({"input_ids": torch.zeros(2, 5, dtype=torch.long), "labels": torch.ones(2)}).labels
    tensor([1., 1.])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from .errors import ConfigError, TraceError

Inputs = Callable[[int], tuple[tuple, dict]]
"""``inputs(batch_size) -> (args, kwargs)`` for one call of a model."""


def as_args(example_inputs: Any) -> tuple[tuple, dict]:
    """Example inputs as ``(args, kwargs)``: a tensor, a tuple (or list) of arguments, or a dict of kwargs.

    Raises:
        TraceError: for no inputs at all, or a tensor of no samples.
    """
    if isinstance(example_inputs, dict):
        args, kwargs = (), dict(example_inputs)
    elif isinstance(example_inputs, (tuple, list)):
        args, kwargs = tuple(example_inputs), {}
    else:
        args, kwargs = (example_inputs,), {}
    if not args and not kwargs:
        raise TraceError("example_inputs is empty: pass one batch the model accepts (a tensor, a tuple of "
                         "arguments, or a dict of keyword arguments)")
    for value in (*args, *kwargs.values()):
        _check_samples(value)
    return args, kwargs


def _check_samples(value: Any) -> None:
    """A tensor of example inputs must hold at least one sample (a first dimension of 0 is no batch)."""
    if isinstance(value, torch.Tensor) and value.dim() and value.shape[0] == 0:
        raise TraceError(f"example_inputs hold a tensor of shape {tuple(value.shape)}, a batch of no samples: pass "
                         f"one batch of at least one sample (two or more to trace a model)")


def resize_batch(value: Any, size: int) -> Any:
    """``value`` with every tensor's first dimension repeated or cut to ``size`` (other values unchanged)."""
    if isinstance(value, torch.Tensor):
        if value.dim() == 0:
            return value
        _check_samples(value)
        reps = -(-size // value.shape[0])
        return value.repeat(reps, *([1] * (value.dim() - 1)))[:size]
    if isinstance(value, dict):
        return {k: resize_batch(v, size) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(resize_batch(v, size) for v in value)
    return value


def make_inputs(input_shape: Sequence[int] | None = None, example_inputs: Any = None, seed: int = 0) -> Inputs:
    """A batch maker: random normal tensors of ``input_shape`` per sample, or ``example_inputs`` resized."""
    if example_inputs is not None:
        as_args(example_inputs)  # refuse empty inputs now, not at the first batch
        return lambda batch: as_args(resize_batch(example_inputs, batch))
    if input_shape is None:
        raise ValueError("give input_shape or example_inputs")
    generator = torch.Generator().manual_seed(seed)
    return lambda batch: ((torch.randn(batch, *input_shape, generator=generator),), {})


@dataclass
class Batch:
    """One batch, ready for ``model(*args, **kwargs)``.

    Attributes:
        args, kwargs: what the model is called with.
        labels: the targets (``None`` when the batch has none).
        indices: positions in the in-memory training set (for precomputed teacher outputs).
    """

    args: tuple
    kwargs: dict = field(default_factory=dict)
    labels: Optional[Tensor] = None
    indices: Optional[Tensor] = None

    @property
    def size(self) -> int:
        for value in (*self.args, *self.kwargs.values(), self.labels):
            if isinstance(value, Tensor) and value.dim():
                return int(value.shape[0])
        return 1

    def shard(self, rank: int, count: int) -> "Batch":
        """The ``rank``-th of ``count`` slices of the batch's samples, as equal as the size allows (samples
        ``rank * size // count`` up to ``(rank + 1) * size // count``; data-parallel training).

        Example:
            >>> Batch((torch.arange(5),), labels=torch.arange(5)).shard(1, 2).labels
            tensor([2, 3, 4])
        """
        size = self.size
        start, end = rank * size // count, (rank + 1) * size // count
        cut = lambda v: v[start:end] if isinstance(v, Tensor) and v.dim() and v.shape[0] == size \
            else v  # noqa: E731
        return replace(self, args=tuple(cut(a) for a in self.args), kwargs={k: cut(v) for k, v in self.kwargs.items()},
                       labels=cut(self.labels), indices=cut(self.indices))

    def to(self, device: torch.device) -> "Batch":
        move = lambda v: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v  # noqa: E731
        return replace(self, args=tuple(move(a) for a in self.args), kwargs={k: move(v) for k, v in self.kwargs.items()},
                       labels=move(self.labels))


def to_batch(raw: Any) -> Batch:
    """One raw batch (tensor, ``(inputs..., labels)``, or dict) as a :class:`Batch`.

    Raises:
        ConfigError: for anything else.
    """
    if isinstance(raw, Tensor):
        return Batch((raw,))
    if isinstance(raw, dict):
        return Batch((), dict(raw), raw.get("labels"))
    if isinstance(raw, (tuple, list)) and raw:
        if len(raw) == 1:
            return Batch((raw[0],))
        return Batch(tuple(raw[:-1]), {}, raw[-1])
    raise ConfigError(f"a batch must be a tensor, an (inputs, labels) tuple or a dict of model arguments; got "
                      f"{type(raw).__name__}")


class InMemory:
    """``(x, y)`` tensors, batched by index in an order fixed by the seed (no per-sample Python work)."""

    def __init__(self, x: Tensor, y: Tensor, batch_size: int, seed: int, shuffle: bool = True):
        if len(x) != len(y) or len(x) == 0:
            raise ConfigError(f"data must be non-empty with as many labels as inputs, got {len(x)} and {len(y)}")
        self.x, self.y, self.batch_size, self.shuffle = x, y, batch_size, shuffle
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def to(self, device: torch.device) -> "InMemory":
        if self.x.device != device:
            self.x, self.y = self.x.to(device), self.y.to(device)
        return self

    def skip_epochs(self, count: int) -> None:
        """Draw the orders of ``count`` epochs without batching them (a resumed run's epochs already done)."""
        for _ in range(count if self.shuffle else 0):
            torch.randperm(len(self.x), generator=self.generator)

    def epoch(self, number: int) -> Iterator[Batch]:
        order = torch.randperm(len(self.x), generator=self.generator) if self.shuffle else torch.arange(len(self.x))
        order = order.to(self.x.device)
        for start in range(0, len(self.x), self.batch_size):
            idx = order[start:start + self.batch_size]
            yield Batch((self.x[idx],), {}, self.y[idx], idx)


class Loader:
    """A DataLoader (or any re-iterable of batches); each epoch iterates it again."""

    def __init__(self, batches: Iterable, seed: int):
        self.batches, self.seed = batches, seed

    def __len__(self) -> int:
        try:
            return len(self.batches)
        except TypeError:
            raise ConfigError("the data has no length (an iterable without __len__): give it one, or train with "
                              "lr_schedule='constant' and a whole number of epochs") from None

    def to(self, device: torch.device) -> "Loader":
        return self

    def skip_epochs(self, count: int) -> None:
        """Nothing to do: each epoch's order comes from its own seed."""

    def epoch(self, number: int) -> Iterator[Batch]:
        torch.manual_seed(self.seed + number)  # a DataLoader shuffling with the default generator: reproducible
        for raw in self.batches:
            yield to_batch(raw)


def as_source(data: Any, batch_size: int, seed: int, shuffle: bool = True):
    """Training or evaluation data as an :class:`InMemory` or :class:`Loader` source.

    Raises:
        ConfigError: for data of another kind.
    """
    if isinstance(data, (InMemory, Loader)):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, Tensor) for t in data) \
            and data[0].dim() and data[1].dim() and len(data[0]) == len(data[1]):
        return InMemory(data[0], data[1], batch_size, seed, shuffle)
    if isinstance(data, torch.utils.data.Dataset) and not isinstance(data, IterableDataset):
        generator = torch.Generator().manual_seed(seed)
        return Loader(DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=generator), seed)
    if isinstance(data, (DataLoader, IterableDataset)) or (hasattr(data, "__iter__") and not isinstance(data, (str, Tensor))):
        return Loader(data, seed)
    raise ConfigError(f"training data must be (x, y) tensors, a DataLoader, an iterable of batches or a torch Dataset; "
                      f"got {type(data).__name__}")


def first_batch(data: Any) -> Batch:
    """The first batch of any data form (to find input shapes, or trace a model)."""
    source = as_source(data, batch_size=2, seed=0, shuffle=False)
    for batch in source.epoch(0):
        return batch
    raise ConfigError("the data is empty")


def in_memory(data: Any) -> bool:
    """Whether ``data`` is ``(x, y)`` tensors (the fast path)."""
    return isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, Tensor) for t in data)
