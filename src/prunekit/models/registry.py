"""A registry of models by name.

Example:
    >>> from prunekit.models import get_model, list_models
    >>> [info.name for info in list_models()]
    ['convnet', 'lenet300', 'lenet5', 'mlp']
    >>> get_model("lenet300", seed=0)(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from ..errors import ConfigError


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows of a model: its builder and a one-line description."""

    name: str
    builder: Callable[..., nn.Module]
    description: str

    def default_args(self) -> dict[str, Any]:
        """The builder's keyword arguments and their default values."""
        params = inspect.signature(self.builder).parameters.values()
        return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


_MODELS: dict[str, ModelInfo] = {}


def register_model(name: str, description: str) -> Callable:
    """Decorator that adds a model builder to the registry under ``name``."""

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = ModelInfo(name, builder, description)
        return builder

    return wrap


def list_models() -> list[ModelInfo]:
    """All registered models, sorted by name."""
    return [_MODELS[name] for name in sorted(_MODELS)]


def model_info(name: str) -> ModelInfo:
    """The registry entry of ``name``; an unknown name raises ConfigError listing the known ones."""
    if name not in _MODELS:
        known = ", ".join(sorted(_MODELS))
        raise ConfigError(f"unknown model {name!r}; known models: {known}")
    return _MODELS[name]


def get_model(name: str, *, seed: int | None = None, **kwargs: Any) -> nn.Module:
    """Build a registered model.

    Args:
        name: a registered name (see :func:`list_models`).
        seed: if given, the initial weights are drawn from ``torch.manual_seed(seed)``
            without disturbing the global random state.
        **kwargs: the builder's arguments (e.g. ``hidden=(300, 100)`` for ``mlp``).

    Returns:
        A freshly initialised ``nn.Module`` that maps ``[N, 1, 28, 28]`` to ``[N, classes]`` logits.

    Example:
        >>> model = get_model("mlp", seed=0)
    """
    info = model_info(name)
    unknown = set(kwargs) - set(info.default_args())
    if unknown:
        raise ConfigError(
            f"model {name!r} takes no argument(s) {sorted(unknown)}; "
            f"its arguments are {sorted(info.default_args())}"
        )
    if seed is None:
        return info.builder(**kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return info.builder(**kwargs)
