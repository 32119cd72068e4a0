"""Which module attribute a size constant of the traced code came from.

The traced graph holds plain ints (``view(x, [2, 8, 96])``, ``split(x, 32)``); some are computed
from tensor shapes and follow the new sizes by themselves, others come from module attributes
(``self.nf``, ``self.split_size``) that compaction must update. To tell them apart, the model is
run once more with every int attribute of every module replaced by an int that remembers where it
came from (:class:`TaggedInt`), and the size arguments of each shape op are recorded.

Example:
    >>> import torch
    >>> from torch import nn
    >>> class Reshaper(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.width = 6
    ...     def forward(self, x):
    ...         return x.view(x.shape[0], self.width).view(-1, x.shape[-1])
    >>> [(r.module, r.op, r.values) for r in record_sizes(Reshaper(), torch.zeros(2, 6))]
    [('', 'view', ((2, None), (6, ':width'))), ('', 'view', ((-1, None), (6, None)))]
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..batches import as_args

SHAPE_OPS = {"view": "view", "reshape": "reshape", "split": "split", "unflatten": "unflatten",
             "expand": "expand", "split_with_sizes": "split", "_unsafe_view": "view", "flatten": "flatten"}


class TaggedInt(int):
    """An int that remembers the attribute it was read from (``"module.path:attr"``)."""

    tag: str

    def __new__(cls, value: int, tag: str) -> "TaggedInt":
        obj = int.__new__(cls, value)
        obj.tag = tag
        return obj

    def __reduce__(self):
        return (int, (int(self),))


@dataclass(frozen=True)
class SizeRecord:
    """One shape op as it ran: the innermost module, the op, and each int argument with its tag."""

    module: str
    op: str
    values: tuple[tuple[int, str | None], ...]


class _Recorder(TorchFunctionMode):
    def __init__(self, stack: list[str], out: list[SizeRecord]):
        super().__init__()
        self.stack, self.out = stack, out

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in SHAPE_OPS:
            ints = [(int(v), getattr(v, "tag", None)) for v in _flat((args[1:], kwargs or {}))
                    if isinstance(v, int) and not isinstance(v, bool)]
            self.out.append(SizeRecord(self.stack[-1] if self.stack else "", SHAPE_OPS[name], tuple(ints)))
        return func(*args, **(kwargs or {}))


def _flat(value: Any):
    if isinstance(value, (list, tuple, torch.Size)):
        for v in value:
            yield from _flat(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _flat(v)
    else:
        yield value


def record_sizes(model: nn.Module, example_inputs: Any) -> list[SizeRecord]:
    """Run ``model`` once (eval mode, no gradients) and record every shape op's int arguments and tags."""
    records: list[SizeRecord] = []
    stack: list[str] = []
    names = {m: n for n, m in model.named_modules()}
    handles, swapped = [], []
    for module, path in names.items():
        handles.append(module.register_forward_pre_hook(lambda m, a, p=path: stack.append(p)))
        handles.append(module.register_forward_hook(lambda m, a, o: stack.pop() and None))
        for attr, value in list(vars(module).items()):
            if type(value) is int and value > 1 and not attr.startswith("_"):
                swapped.append((module, attr, value))
                object.__setattr__(module, attr, TaggedInt(value, f"{path}:{attr}"))
    args, kwargs = as_args(example_inputs)
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad(), _Recorder(stack, records), contextlib.suppress(Exception):
            model(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
        for module, attr, value in swapped:
            object.__setattr__(module, attr, value)
        for module, mode in modes.items():
            module.training = mode
    return records
