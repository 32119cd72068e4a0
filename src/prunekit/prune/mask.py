"""Mask: a validated ``{parameter name -> bool tensor}`` (``True`` = keep).

Names are those of ``model.named_parameters()`` (and ``model.state_dict()``). A parameter
without an entry is not masked. Masks are stored on the CPU and moved to the parameter's
device when applied. Files are safetensors (never pickle).

Example:
    >>> model = nn.Linear(3, 2, bias=False)
    >>> mask = as_mask({"weight": torch.tensor([[True, False, True], [False, True, True]])})
    >>> _ = mask.apply_(model)
    >>> int((model.weight == 0).sum()), round(mask.sparsity(), 1)
    (2, 33.3)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Iterable, Iterator, Optional, Union

import torch
from torch import nn

from prunekit.errors import CheckpointError, ConfigError
from prunekit.storage import load_tensors, save_tensors

PathLike = Union[str, Path]


class Mask(Mapping):
    """Read-only mapping ``{parameter name: bool keep mask}``.

    Args:
        masks: ``{name: bool tensor}``; every value must be a ``torch.bool`` tensor.

    Raises:
        ConfigError: if a name is not a string or a value is not a bool tensor.

    Example:
        >>> model = nn.Linear(2, 2)
        >>> mask = Mask({"weight": torch.tensor([[True, False], [True, True]])})
        >>> _ = mask.apply_(model)
        >>> mask.sparsity()
        25.0
    """

    def __init__(self, masks: Mapping[str, torch.Tensor]):
        self._masks: dict[str, torch.Tensor] = {}
        for name, value in masks.items():
            if not isinstance(name, str):
                raise ConfigError(f"mask names must be strings, got {name!r}")
            if not isinstance(value, torch.Tensor) or value.dtype != torch.bool:
                got = value.dtype if isinstance(value, torch.Tensor) else type(value).__name__
                raise ConfigError(f"mask for {name!r} must be a torch.bool tensor, got {got}")
            self._masks[name] = value.detach().to("cpu").contiguous().clone()

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._masks[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._masks)

    def __len__(self) -> int:
        return len(self._masks)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mask):
            return NotImplemented
        return self.keys() == other.keys() and all(torch.equal(m, other[n]) for n, m in self.items())

    __hash__ = None  # mutable tensors inside: not hashable

    def __repr__(self) -> str:
        pruned, total = self.num_pruned(), self.num_total()
        return f"Mask({len(self)} tensors, {pruned}/{total} pruned, {self.sparsity():.2f}%)"

    def __and__(self, other: "Mask") -> "Mask":
        """Intersection of the kept sets: an entry is kept only if both masks keep it.

        A name present in one mask only keeps that mask's entries (missing = all kept).
        """
        if not isinstance(other, Mask):
            return NotImplemented
        merged = dict(self._masks)
        for name, value in other.items():
            mine = merged.get(name, value)
            if mine.shape != value.shape:
                raise ConfigError(f"cannot intersect masks for {name!r}: shapes "
                                  f"{tuple(mine.shape)} and {tuple(value.shape)} differ")
            merged[name] = mine & value
        return Mask(merged)

    def num_total(self) -> int:
        """Number of masked entries (kept or pruned)."""
        return sum(m.numel() for m in self._masks.values())

    def num_pruned(self) -> int:
        """Number of pruned (``False``) entries."""
        return sum(int((~m).sum()) for m in self._masks.values())

    def sparsity(self) -> float:
        """Percentage of pruned entries over all masked entries (0.0 for an empty mask)."""
        total = self.num_total()
        return 100.0 * self.num_pruned() / total if total else 0.0

    def per_tensor_sparsity(self) -> dict[str, float]:
        """``{name: percentage of pruned entries of that tensor}``."""
        return {n: 100.0 * int((~m).sum()) / max(m.numel(), 1) for n, m in self._masks.items()}

    def to_dict(self) -> dict[str, torch.Tensor]:
        """A plain ``dict`` of copies of the mask tensors."""
        return {n: m.clone() for n, m in self._masks.items()}

    def validate(self, model: nn.Module) -> None:
        """Check that every name is a parameter of ``model`` with the same shape.

        Raises:
            CheckpointError: naming the parameter (and both shapes for a mismatch).
        """
        params = dict(model.named_parameters())
        for name, m in self._masks.items():
            if name not in params:
                if f"{name}_orig" in params:
                    raise CheckpointError(
                        f"{name!r} is pruned with torch.nn.utils.prune ({name}_orig and a mask buffer); "
                        f"convert the model first: model, mask = prunekit.from_torch_prune(model)")
                known = ", ".join(list(params)[:20])
                raise CheckpointError(f"mask entry {name!r} is not a parameter of the model "
                                      f"(parameters: {known}{', ...' if len(params) > 20 else ''})")
            if tuple(params[name].shape) != tuple(m.shape):
                raise CheckpointError(
                    f"mask for {name!r} has shape {tuple(m.shape)} but the model's parameter "
                    f"has shape {tuple(params[name].shape)}"
                )

    def apply_(self, model: nn.Module) -> nn.Module:
        """Zero the pruned entries of ``model`` in place (parameter objects unchanged).

        Returns:
            ``model``.
        """
        self.validate(model)
        params = dict(model.named_parameters())
        _zero_([(params[n], m.to(params[n].device)) for n, m in self._masks.items()])
        return model

    def hold(self, model: nn.Module, optimizer: Optional[torch.optim.Optimizer] = None) -> "MaskHold":
        """Keep pruned entries exactly zero while training.

        Applies the mask now, registers a gradient hook on each masked parameter that zeroes
        the masked gradient entries, and (if ``optimizer`` is given) an optimizer step
        post-hook that re-applies the mask, because momentum, weight decay or Adam state
        can move a zero weight even with a zero gradient.

        Args:
            model: the model the mask belongs to.
            optimizer: the optimizer that updates it (recommended).

        Returns:
            A :class:`MaskHold`; call ``.remove()`` (or use it as a context manager) to stop.

        Example:
            >>> model = nn.Linear(2, 2)
            >>> opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            >>> mask = Mask({"weight": torch.tensor([[True, False], [True, True]])})
            >>> with mask.hold(model, opt):
            ...     model(torch.ones(1, 2)).sum().backward(); opt.step()
            >>> model.weight.detach()[0, 1].item()
            0.0
        """
        self.apply_(model)
        params = dict(model.named_parameters())
        pairs = [(params[n], m.to(params[n].device)) for n, m in self._masks.items()]
        handles = [p.register_hook(lambda g, keep=keep: g.masked_fill(~keep, 0)) for p, keep in pairs]
        if optimizer is not None:
            handles.append(optimizer.register_step_post_hook(lambda *_: _zero_(pairs)))
        return MaskHold(handles)

    @classmethod
    def ones_like(cls, model: nn.Module, names: Optional[Iterable[str]] = None) -> "Mask":
        """An all-kept mask for the given parameter names (default: all parameters)."""
        params = dict(model.named_parameters())
        names = list(params) if names is None else list(names)
        missing = [n for n in names if n not in params]
        if missing:
            raise ConfigError(f"not parameters of the model: {', '.join(missing)}")
        return cls({n: torch.ones(params[n].shape, dtype=torch.bool) for n in names})

    def save(self, path: PathLike) -> None:
        """Write the mask to a safetensors file atomically (per-tensor sparsity in its metadata)."""
        meta = {"format": "prunekit.mask", "sparsity": json.dumps(self.per_tensor_sparsity())}
        save_tensors(path, self.to_dict(), metadata=meta)

    @classmethod
    def load(cls, path: PathLike) -> "Mask":
        """Read a mask written by :meth:`save` (safetensors only, never unpickles).

        Raises:
            CheckpointError: if the file is missing, not safetensors, holds non-bool tensors, or
                bool tensors whose bytes are not all 0 or 1.
        """
        path = Path(path)
        return cls.from_tensors(load_tensors(path, what="mask file (safetensors)"), path)

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, torch.Tensor], path: PathLike) -> "Mask":
        """The mask of the tensors read from the mask file ``path`` (checked as :meth:`load` does)."""
        bad = [n for n, t in tensors.items() if t.dtype != torch.bool]
        if bad:
            raise CheckpointError(f"mask file {path} holds non-bool tensors: {', '.join(bad[:10])}")
        for name, t in tensors.items():
            if t.numel() and int(t.view(torch.uint8).max()) > 1:
                raise CheckpointError(f"mask file {path}: tensor {name!r} holds bytes other than 0 and 1, "
                                      f"which are not valid booleans; the file is corrupt")
        return cls(tensors)


def as_mask(mask: Optional[Mapping[str, torch.Tensor]]) -> Optional[Mask]:
    """``mask`` as a :class:`Mask` (``None`` stays ``None``; a plain dict is validated).

    Example:
        >>> as_mask(None) is None
        True
        >>> as_mask({"w": torch.ones(2, dtype=torch.bool)})
        Mask(1 tensors, 0/2 pruned, 0.00%)
    """
    if mask is None or isinstance(mask, Mask):
        return mask
    return Mask(mask)


def _zero_(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    with torch.no_grad():
        for p, keep in pairs:
            p.masked_fill_(~keep, 0)


class MaskHold:
    """Handle returned by :meth:`Mask.hold`; ``remove()`` unregisters all its hooks."""

    def __init__(self, handles: list):
        self._handles = handles

    def remove(self) -> None:
        """Unregister the gradient hooks and the optimizer hook (idempotent)."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> "MaskHold":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()
