"""Removed sublayers: a residual branch (a block's attention or MLP) replaced by one that adds nothing.

In a residual block ``h + f(norm(h))`` a branch ``f`` is removed by making it return zeros: the block then
passes its input through that half. :class:`Bypassed` takes the branch's place, keeps the structure of its
output (a tensor, or a tuple whose first element is the hidden states) and, for an attention branch, still
records the sequence length in the KV cache (one key and one value of width 1 per token), so the cache's layer
bookkeeping -- which reads the first layer's length as the number of tokens seen -- stays right. It holds no
weights: the model loses the branch's parameters.

Example:
    >>> import torch
    >>> from torch import nn
    >>> block = nn.ModuleDict({"mlp": nn.Linear(4, 4)})
    >>> bypass(block, "mlp", "mlp", outputs=0)
    >>> block["mlp"](torch.ones(2, 4)).abs().sum().item(), sum(p.numel() for p in block.parameters())
    (0.0, 0)
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

PARTS = ("attention", "mlp")


class Bypassed(nn.Module):
    """A removed residual branch: zeros shaped like its input hidden states.

    Args:
        part: ``"attention"`` or ``"mlp"`` (what was removed).
        outputs: 0 when the branch returned a tensor, else the length of the tuple it returned (the hidden
            states first, ``None`` for the rest, e.g. attention weights).
        layer_idx: for attention, the KV-cache layer it wrote (``None``: no cache entry).
    """

    def __init__(self, part: str, outputs: int = 0, layer_idx: Optional[int] = None):
        super().__init__()
        if part not in PARTS:
            raise ValueError(f"unknown part {part!r}; expected one of {', '.join(PARTS)}")
        self.part, self.outputs, self.layer_idx = part, outputs, layer_idx

    def extra_repr(self) -> str:
        return f"part={self.part!r}, outputs={self.outputs}, layer_idx={self.layer_idx}"

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        hidden = args[0] if args else kwargs.get("hidden_states")
        if hidden is None:
            hidden = next(v for v in kwargs.values() if isinstance(v, torch.Tensor))
        if self.layer_idx is not None:
            for cache in _caches(list(args[1:]) + list(kwargs.values())):
                heads, width = _allocated(cache, self.layer_idx)
                tokens = hidden.new_zeros(hidden.shape[0], heads, hidden.shape[-2], width)
                cache.update(tokens, tokens, self.layer_idx)
        zeros = torch.zeros_like(hidden)
        return zeros if self.outputs == 0 else (zeros,) + (None,) * (self.outputs - 1)


def _caches(values: list[Any]) -> list[Any]:
    """The KV caches among a branch's arguments (objects with ``update`` and ``get_seq_length``; the
    self-attention part of an encoder-decoder cache), each once."""
    found = {}
    for value in values:
        value = getattr(value, "self_attention_cache", value)
        if callable(getattr(value, "update", None)) and callable(getattr(value, "get_seq_length", None)):
            found[id(value)] = value
    return list(found.values())


def _allocated(cache: Any, layer_idx: int) -> tuple[int, int]:
    """``(heads, head width)`` of the keys a cache layer holds already (a static cache allocates them at the
    config's sizes before the first token); ``(1, 1)`` for a layer that takes its shape from the first update."""
    layers = getattr(cache, "layers", None)
    try:
        keys = layers[layer_idx].keys if layers is not None else None
    except (IndexError, AttributeError, TypeError):
        keys = None
    return (keys.shape[1], keys.shape[-1]) if isinstance(keys, torch.Tensor) and keys.dim() == 4 else (1, 1)


def bypass(model: nn.Module, path: str, part: str, outputs: int = 0, layer_idx: Optional[int] = None) -> None:
    """Replace the submodule at ``path`` by a :class:`Bypassed` branch, in place."""
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, name, Bypassed(part, outputs, layer_idx))
