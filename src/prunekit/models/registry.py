"""A registry of models by name, with argument checks and a size check before anything is allocated.

Example:
    >>> from prunekit.models import get_model, list_models
    >>> [info.name for info in list_models()]
    ['convnet', 'lenet300', 'lenet5', 'lenet5_caffe', 'mlp', 'resnet', 'resnet20', 'resnet56', 'vgg']
    >>> get_model("lenet300", seed=0)(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    >>> get_model("mlp", hidden=[10**7, 10**7])
    Traceback (most recent call last):
    ...
    prunekit.errors.ConfigError: model 'mlp' with arguments {'hidden': [10000000, 10000000]} would have 100,007,940,000,000 parameters (400,031.8 GB as float32), more than this machine's ... GB of available memory
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from ..errors import ConfigError
from ..references import call, is_reference
from ..registry import Registry
from .memory import available_memory_bytes


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


MODELS: Registry[ModelInfo] = Registry("model")
"""The registered models (``prunekit models`` lists them)."""


def register_model(name: str, description: str) -> Callable:
    """Decorator that adds a model builder to :data:`MODELS` under ``name``.

    The builder takes keyword arguments with defaults (sizes, classes...) and returns a fresh
    ``nn.Module``; ``get_model(name, seed=...)`` seeds its initial weights.
    """

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        MODELS.register(name, ModelInfo(name, builder, description))
        return builder

    return wrap


def list_models() -> list[ModelInfo]:
    """All registered models, sorted by name."""
    return [MODELS.get(name) for name in sorted(MODELS.names())]


def model_info(name: str) -> ModelInfo:
    """The registry entry of ``name``; an unknown name raises UnknownNameError listing the known ones."""
    return MODELS.get(name)


def get_model(name: str, *, seed: int | None = None, **kwargs: Any) -> nn.Module:
    """Build a registered model.

    The arguments are checked against the builder's defaults (names and JSON types), and the
    model is first built on PyTorch's ``meta`` device (no memory) to refuse sizes that cannot
    fit in this machine's memory.

    Args:
        name: a registered name (see :func:`list_models`), or user code ``FILE.py:FUNCTION`` /
            ``package.module:FUNCTION`` returning an ``nn.Module`` (called with ``kwargs``).
        seed: if given, the initial weights are drawn from ``torch.manual_seed(seed)``
            without disturbing the global random state.
        **kwargs: the builder's arguments (e.g. ``hidden=(300, 100)`` for ``mlp``).

    Returns:
        A freshly initialised ``nn.Module``.

    Raises:
        UnknownNameError: for an unknown model.
        ConfigError: for unknown arguments, values of the wrong type, values the builder rejects,
            a model too large for the available memory, or user code building a model without parameters.

    Example:
        >>> get_model("mlp", hidden=[300, 100])[1].weight.shape
        torch.Size([300, 784])
        >>> get_model("mlp", hidden="wide")
        Traceback (most recent call last):
        ...
        prunekit.errors.ConfigError: model 'mlp': argument hidden must be a list of integers (like its default [1000, 1000, 500, 200]), got str 'wide'
    """
    if is_reference(name):
        return _user_model(name, seed, kwargs)
    info = model_info(name)
    defaults = info.default_args()
    unknown = set(kwargs) - set(defaults)
    if unknown:
        raise ConfigError(f"model {name!r} takes no argument(s) {sorted(unknown)}; its arguments are {sorted(defaults)}")
    for key, value in kwargs.items():
        _check_arg(name, key, value, defaults[key])
    _check_size(info, kwargs)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        return _build(info, kwargs)


def fit_to_data(name: str, kwargs: dict[str, Any], input_shape, num_classes: int | None) -> dict[str, Any]:
    """``kwargs`` completed with the input size and class count of the data, for the builder arguments
    that take them (``in_features``, ``in_channels``, ``input_size``, ``num_classes``) and that the
    user did not set.

    Example:
        >>> fit_to_data("convnet", {}, (3, 32, 32), 100)
        {'num_classes': 100, 'in_channels': 3, 'input_size': [32, 32]}
        >>> fit_to_data("mlp", {"num_classes": 5}, (3, 32, 32), 10)
        {'num_classes': 5, 'in_features': 3072}
    """
    if is_reference(name) or input_shape is None:
        return dict(kwargs)
    accepted = model_info(name).default_args()
    derived = {"num_classes": num_classes, "in_features": int(math.prod(input_shape)),
               "in_channels": input_shape[0] if len(input_shape) == 3 else None,
               "input_size": list(input_shape[1:]) if len(input_shape) == 3 else None}
    out = dict(kwargs)
    for key, value in derived.items():
        if key not in accepted or key in out or value is None:
            continue
        default = accepted[key]
        same = list(default) == value if isinstance(value, list) else default == value
        if not same:  # only what differs from the defaults is recorded
            out[key] = value
    return out


def _user_model(reference: str, seed: int | None, kwargs: dict[str, Any]) -> nn.Module:
    """A model built by user code ``FILE.py:FUNCTION`` (or ``package.module:FUNCTION``) with ``kwargs``."""
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        model = call(reference, "model builder", **kwargs)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{reference} returned a {type(model).__name__}; a model builder must return an nn.Module")
    if next(model.parameters(), None) is None:
        raise ConfigError(f"{reference} returned a {type(model).__name__} with no parameters: there is nothing to "
                          f"train or prune; return a model with at least one layer that has weights")
    return model


def _build(info: ModelInfo, kwargs: dict[str, Any]) -> nn.Module:
    try:
        return info.builder(**kwargs)
    except (TypeError, ValueError, RuntimeError, ZeroDivisionError, OverflowError) as exc:
        raise ConfigError(f"model {info.name!r} cannot be built with arguments {kwargs}: {exc}") from None


def _check_size(info: ModelInfo, kwargs: dict[str, Any]) -> None:
    with torch.device("meta"):
        model = _build(info, kwargs)
    numel = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    need, have = 4 * numel, available_memory_bytes()
    if have is not None and need > have:
        raise ConfigError(
            f"model {info.name!r} with arguments {kwargs} would have {numel:,} parameters "
            f"({need / 1e9:,.1f} GB as float32), more than this machine's {have / 1e9:,.1f} GB of available memory")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        inner = {_kind(v) for v in value}
        return f"a list of {'integers' if inner == {'an integer'} else 'values'}"
    return type(value).__name__


def _check_arg(model: str, key: str, value: Any, default: Any) -> None:
    """The value must have the JSON type of the default (an int where a float is expected is fine)."""
    if default is None:
        return
    want, got = _kind(default), _kind(value)
    ok = want == got or (want == "a number" and got == "an integer") or \
        (want == "a list of values" and got.startswith("a list"))
    if not ok:
        shown = list(default) if isinstance(default, tuple) else default
        raise ConfigError(f"model {model!r}: argument {key} must be {want} "
                          f"(like its default {shown!r}), got {type(value).__name__} {value!r}")
