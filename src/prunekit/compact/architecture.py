"""Describe an ``nn.Sequential`` of standard layers as JSON, and build it back (no pickles).

A compact model has layer sizes no registry builder produces (``Linear(784, 212)``, ...), so its
checkpoint stores the architecture itself: a JSON list of layers, each with its type and
constructor arguments, read from the module's attributes. Only the standard layers in
:data:`LAYER_TYPES` are described; nested ``nn.Sequential`` are allowed.

Spec format::

    {"format": "prunekit.architecture", "version": 1,
     "layers": [{"name": "fc1", "type": "Linear",
                 "args": {"in_features": 784, "out_features": 212, "bias": false}}, ...]}

Example:
    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    >>> spec = architecture_to_json(model)
    >>> [layer["type"] for layer in spec["layers"]]
    ['Flatten', 'Linear']
    >>> model_from_architecture(spec)(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..models.memory import available_memory_bytes

FORMAT, VERSION = "prunekit.architecture", 1

_CONV = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
         "bias", "padding_mode")
_BN = ("num_features", "eps", "momentum", "affine", "track_running_stats")

LAYER_TYPES: dict[str, tuple[type, tuple[str, ...]]] = {
    "Linear": (nn.Linear, ("in_features", "out_features", "bias")),
    "Conv1d": (nn.Conv1d, _CONV),
    "Conv2d": (nn.Conv2d, _CONV),
    "BatchNorm1d": (nn.BatchNorm1d, _BN),
    "BatchNorm2d": (nn.BatchNorm2d, _BN),
    "ReLU": (nn.ReLU, ("inplace",)),
    "ReLU6": (nn.ReLU6, ("inplace",)),
    "LeakyReLU": (nn.LeakyReLU, ("negative_slope", "inplace")),
    "ELU": (nn.ELU, ("alpha", "inplace")),
    "GELU": (nn.GELU, ("approximate",)),
    "SiLU": (nn.SiLU, ("inplace",)),
    "Tanh": (nn.Tanh, ()),
    "Sigmoid": (nn.Sigmoid, ()),
    "Softmax": (nn.Softmax, ("dim",)),
    "LogSoftmax": (nn.LogSoftmax, ("dim",)),
    "Identity": (nn.Identity, ()),
    "Flatten": (nn.Flatten, ("start_dim", "end_dim")),
    "Dropout": (nn.Dropout, ("p", "inplace")),
    "Dropout2d": (nn.Dropout2d, ("p", "inplace")),
    "MaxPool2d": (nn.MaxPool2d, ("kernel_size", "stride", "padding", "dilation", "ceil_mode")),
    "AvgPool2d": (nn.AvgPool2d, ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                                 "divisor_override")),
    "AdaptiveAvgPool2d": (nn.AdaptiveAvgPool2d, ("output_size",)),
    "AdaptiveMaxPool2d": (nn.AdaptiveMaxPool2d, ("output_size",)),
}
"""Supported layer types: ``{type name: (class, constructor arguments read from attributes)}``."""


def architecture_to_json(model: nn.Module) -> dict[str, Any]:
    """The JSON-serialisable description of ``model``.

    Args:
        model: an ``nn.Sequential`` whose layers (and nested ``nn.Sequential``) all have a type
            in :data:`LAYER_TYPES` (exactly that type: subclasses may change ``forward``).

    Returns:
        ``{"format": "prunekit.architecture", "version": 1, "layers": [...]}``.

    Raises:
        ConfigError: naming the first layer that is not a standard layer.

    Example:
        >>> architecture_to_json(nn.Sequential(nn.ReLU()))["layers"]
        [{'name': '0', 'type': 'ReLU', 'args': {'inplace': False}}]
    """
    if not isinstance(model, nn.Sequential):
        raise ConfigError(f"architecture_to_json describes nn.Sequential models; got {type(model).__name__}")
    return {"format": FORMAT, "version": VERSION, "layers": _describe(model, "")}


def _describe(seq: nn.Sequential, prefix: str) -> list[dict[str, Any]]:
    layers = []
    for name, module in seq.named_children():
        full = f"{prefix}{name}"
        if type(module) is nn.Sequential:
            layers.append({"name": name, "type": "Sequential", "layers": _describe(module, full + ".")})
            continue
        kind = type(module).__name__
        if kind not in LAYER_TYPES or type(module) is not LAYER_TYPES[kind][0]:
            raise ConfigError(
                f"layer {full!r} is a {type(module).__module__}.{kind}, which has no JSON architecture; "
                f"supported layer types: Sequential, {', '.join(LAYER_TYPES)}"
            )
        if getattr(module, "return_indices", False):
            raise ConfigError(f"layer {full!r}: return_indices=True is not supported")
        args = {a: _jsonable(_arg(module, a)) for a in LAYER_TYPES[kind][1]}
        layers.append({"name": name, "type": kind, "args": args})
    return layers


def _arg(module: nn.Module, name: str) -> Any:
    if name == "bias":  # constructor flag, attribute is a tensor or None
        return module.bias is not None
    return getattr(module, name)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    raise ConfigError(f"cannot describe constructor argument value {value!r} in JSON")


def model_from_architecture(spec: dict[str, Any]) -> nn.Sequential:
    """Build the (freshly initialised) model a :func:`architecture_to_json` spec describes.

    Args:
        spec: the parsed JSON.

    Returns:
        An ``nn.Sequential`` whose ``state_dict`` names and shapes are those of the described model.

    Raises:
        ConfigError: for a spec of another format or version, an unknown layer type, or
            arguments the layer's constructor rejects (naming the layer).

    Example:
        >>> spec = {"format": "prunekit.architecture", "version": 1,
        ...         "layers": [{"name": "fc", "type": "Linear",
        ...                     "args": {"in_features": 4, "out_features": 2, "bias": True}}]}
        >>> model_from_architecture(spec).fc.weight.shape
        torch.Size([2, 4])
    """
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        got = spec.get("format") if isinstance(spec, dict) else type(spec).__name__
        raise ConfigError(f"not a prunekit architecture: format is {got!r}, expected {FORMAT!r}")
    if spec.get("version") != VERSION:
        raise ConfigError(f"architecture version {spec.get('version')!r} is not supported (expected {VERSION})")
    try:
        with torch.device("meta"):  # sizes first: refuse what cannot fit before allocating it
            numel = sum(p.numel() for p in _build(spec.get("layers"), "").parameters())
        if (have := available_memory_bytes()) is not None and 4 * numel > have:
            raise ConfigError(f"the architecture has {numel:,} parameters ({4 * numel / 1e9:,.1f} GB as float32), "
                              f"more than this machine's {have / 1e9:,.1f} GB of available memory")
        return _build(spec.get("layers"), "")
    except RecursionError:
        raise ConfigError("the architecture is nested too deeply") from None


def _build(layers: Any, prefix: str) -> nn.Sequential:
    if not isinstance(layers, list):
        raise ConfigError(f"architecture {prefix or 'root'!r}: 'layers' must be a list, got {type(layers).__name__}")
    modules: OrderedDict[str, nn.Module] = OrderedDict()
    for entry in layers:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ConfigError(f"architecture {prefix or 'root'!r}: each layer needs a string 'name', got {entry!r}")
        name, kind = entry["name"], entry.get("type")
        full = f"{prefix}{name}"
        _check_layer_name(name, full, modules)
        if kind == "Sequential":
            modules[name] = _build(entry.get("layers"), full + ".")
            continue
        if not isinstance(kind, str) or kind not in LAYER_TYPES:
            raise ConfigError(f"architecture layer {full!r} has unknown type {kind!r}; "
                              f"supported: Sequential, {', '.join(LAYER_TYPES)}")
        cls, names = LAYER_TYPES[kind]
        args = entry.get("args", {})
        if not isinstance(args, dict) or set(args) - set(names):
            raise ConfigError(f"architecture layer {full!r} ({kind}): arguments {args!r} are not a subset of {names}")
        try:
            modules[name] = cls(**{k: _tuple(v) for k, v in args.items()})
        except (TypeError, ValueError, RuntimeError, OverflowError, ZeroDivisionError) as exc:
            raise ConfigError(f"architecture layer {full!r} ({kind}): cannot build it from {args} ({exc})") from None
    return nn.Sequential(modules)


_SEQUENTIAL_ATTRIBUTES = frozenset(dir(nn.Sequential()))
"""Names a layer cannot have: ``forward``, ``training``, ``append``... (attributes of the nn.Sequential holding it)."""


def _check_layer_name(name: str, full: str, earlier: Any) -> None:
    """A layer name must be one ``nn.Sequential`` can hold: non-empty, without '.', new, not one of its attributes."""
    problem = ("is empty" if not name else "holds a '.'" if "." in name else
               "repeats an earlier layer name" if name in earlier else
               "is an attribute of nn.Sequential" if name in _SEQUENTIAL_ATTRIBUTES else None)
    if problem:
        raise ConfigError(f"architecture layer name {full!r} {problem}; expected a non-empty name without '.', "
                          f"used once, that is not an nn.Sequential attribute (forward, training, append...)")


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value



__all__ = ["LAYER_TYPES", "architecture_to_json", "model_from_architecture"]
