"""The decoder blocks of a causal language model, found without naming its architecture, and the angular
distance between hidden states that depth pruning ranks them by.

Example:
    >>> import torch
    >>> round(angular_distance_sum(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])), 3)
    0.5
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError


def decoder_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """``(name, blocks)``: the model's list of decoder blocks (the ``nn.ModuleList`` whose length is the
    config's ``num_hidden_layers``).

    Raises:
        ConfigError: when no such list, or more than one, is found.
    """
    layers = text_config(model).num_hidden_layers
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m) == layers]
    if len(found) != 1:
        raise ConfigError(f"{type(model).__name__}: expected one list of {layers} decoder blocks (the config's "
                          f"num_hidden_layers), found {len(found)} ({', '.join(n for n, _ in found) or 'none'})")
    return found[0]


def text_config(model: nn.Module) -> Any:
    """The model's text config (the config itself, or a multimodal config's text part)."""
    config = model.config
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def hidden_states(value: Any) -> Tensor:
    """The hidden states in a block's input or output (a tensor, or the first element of a tuple)."""
    return value if isinstance(value, Tensor) else value[0]


def angular_distance_sum(a: Tensor, b: Tensor) -> float:
    """Sum over tokens of ``arccos(cos(a, b)) / pi`` (in ``[0, 1]`` each), computed in float64."""
    cos = torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=-1).clamp(-1, 1)
    return (torch.arccos(cos) / math.pi).sum().item()
