"""Module attributes that must follow new parameter sizes after compaction.

Standard layers derive theirs from their parameters (:data:`LAYER_ATTRIBUTES`, a registry keyed by
class). Other sizes are constants of a model's code, found in the traced graph (a ``split`` by 32,
a ``view`` to 96 features): the attribute of the module that ran the op and holds that value is
updated (:func:`constant_updates`).

Example:
    >>> from torch import nn
    >>> layer = nn.Linear(8, 4)
    >>> layer.weight = nn.Parameter(layer.weight.detach()[:3])
    >>> update_layer_attributes(layer, {})
    {'in_features': 8, 'out_features': 3}
    >>> layer.out_features
    3
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from ..registry import Registry

LAYER_ATTRIBUTES: Registry[Callable[[nn.Module, dict], dict[str, Any]]] = Registry("layer attribute rule")
"""``{layer class name: fn(module, original attributes) -> attributes}`` for standard layers."""


def _conv(m: nn.Module, before: dict) -> dict[str, Any]:
    out_channels = m.weight.shape[0]
    depthwise = before.get("groups", 1) > 1 and before["groups"] == before["in_channels"] == before["out_channels"]
    groups = out_channels if depthwise else m.groups
    return {"in_channels": m.weight.shape[1] * groups, "out_channels": out_channels, "groups": groups}


for _cls in (nn.Conv1d, nn.Conv2d, nn.Conv3d):
    LAYER_ATTRIBUTES.register(_cls.__name__, _conv)
LAYER_ATTRIBUTES.register("Linear", lambda m, b: {"in_features": m.weight.shape[1], "out_features": m.weight.shape[0]})
LAYER_ATTRIBUTES.register("Embedding", lambda m, b: {"num_embeddings": m.weight.shape[0],
                                                     "embedding_dim": m.weight.shape[1]})
for _cls in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm1d, nn.InstanceNorm2d):
    LAYER_ATTRIBUTES.register(_cls.__name__, lambda m, b: {"num_features": (
        m.weight if m.weight is not None else m.running_mean).shape[0]})
LAYER_ATTRIBUTES.register("LayerNorm", lambda m, b: {"normalized_shape": tuple(m.weight.shape)}
                          if m.weight is not None else {})
LAYER_ATTRIBUTES.register("RMSNorm", lambda m, b: {"normalized_shape": tuple(m.weight.shape)}
                          if getattr(m, "weight", None) is not None and hasattr(m, "normalized_shape") else {})
LAYER_ATTRIBUTES.register("GroupNorm", lambda m, b: {"num_channels": m.weight.shape[0]} if m.weight is not None else {})


def update_layer_attributes(module: nn.Module, before: dict[str, Any]) -> dict[str, Any]:
    """Set the size attributes of a standard layer from its (new) parameters; returns what was set."""
    name = type(module).__name__
    if name not in LAYER_ATTRIBUTES or type(module).__module__.split(".")[0] != "torch":
        return {}
    values = LAYER_ATTRIBUTES.get(name)(module, before)
    for attr, value in values.items():
        setattr(module, attr, value)
    return values


def int_attributes(module: nn.Module) -> dict[str, int]:
    """The plain int attributes of a module (its own, not its children's)."""
    return {k: v for k, v in vars(module).items() if type(v) is int and not k.startswith("_")}


def constant_updates(model: nn.Module, modules: tuple[str, ...], old: int, new: int) -> dict[str, dict[str, int]]:
    """Attributes to change so that a constant ``old`` of the code run by ``modules`` (outermost first)
    becomes ``new``: every int attribute equal to ``old`` on the innermost module holding one."""
    for path in reversed(modules):
        try:
            module = model.get_submodule(path) if path else model
        except AttributeError:
            continue
        found = [k for k, v in int_attributes(module).items() if v == old]
        if found:
            return {path: {k: new for k in found}}
    return {}
