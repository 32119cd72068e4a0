"""Which parameters are pruned, and which parameters make up a unit.

Prunable layers are the ``nn.Linear`` and ``nn.Conv2d`` modules, in ``named_modules()`` order.

The **output layer** (the classifier: the last ``nn.Linear`` in module order, or the last
prunable layer if there is no Linear) is left whole by default, for both methods, as in the
reference implementations of the study: ``include_output=True`` adds it to weight pruning. Its
output units are the classes and are never removed by unit pruning.

A unit is an output neuron (a ROW of ``nn.Linear.weight``, which is ``[out, in]`` in PyTorch;
a column in TensorFlow's ``[in, out]`` layout) or a conv filter ``weight[i]``. Pruning unit ``i``
masks, so that the unit's output is exactly zero before the nonlinearity:

* the weight row / filter ``weight[i]``;
* ``bias[i]`` if the layer has a bias;
* ``bn.weight[i]`` and ``bn.bias[i]`` if the layer is immediately followed, in module
  registration order (the next leaf module), by a BatchNorm with ``num_features == out``.
  A BatchNorm with ``affine=False`` has no parameters to mask, so its output for a pruned
  channel is ``-running_mean / sqrt(running_var + eps)``, not zero.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import nn

from prunekit.errors import ConfigError

PRUNABLE_TYPES = (nn.Linear, nn.Conv2d)


def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """All ``nn.Linear`` and ``nn.Conv2d`` modules as ``(name, module)``, in module order.

    Example:
        >>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
        >>> [name for name, _ in prunable_layers(model)]
        ['0', '2']
    """
    return [(n, m) for n, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)]


def classifier_name(model: nn.Module) -> Optional[str]:
    """Name of the output layer (classifier): the last ``nn.Linear`` (else the last prunable layer).

    Example:
        >>> classifier_name(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4, 2)))
        '2'
    """
    layers = prunable_layers(model)
    linears = [n for n, m in layers if isinstance(m, nn.Linear)]
    if linears:
        return linears[-1]
    return layers[-1][0] if layers else None


def select_layers(
    model: nn.Module, method: str, layers: Optional[Sequence[str]] = None, *, include_output: bool = False,
) -> list[tuple[str, nn.Module]]:
    """The prunable layers a pruning call covers.

    Args:
        model: the model.
        method: ``"weight"`` or ``"unit"``.
        layers: optional ``fnmatch`` patterns on module names, choosing among the prunable layers.
        include_output: weight pruning: prune the output layer too (it is left whole by default).

    Returns:
        ``(name, module)`` pairs in module order.

    Raises:
        ConfigError: if the model has nothing to prune, a pattern matches no prunable layer, a
            pattern names only the output layer without ``include_output`` (``PruneSpec`` refuses
            ``include_output`` for a method that removes units).

    Example:
        >>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
        >>> [n for n, _ in select_layers(model, "weight")]
        ['0']
        >>> [n for n, _ in select_layers(model, "weight", include_output=True)]
        ['0', '2']
    """
    candidates = prunable_layers(model)
    if not candidates:
        raise ConfigError(f"{type(model).__name__} has no nn.Linear or nn.Conv2d layer: nothing to prune")
    names = [n for n, _ in candidates]
    output = classifier_name(model)
    chosen = names if layers is None else _match(names, layers)
    if not include_output and output in chosen:
        chosen = [n for n in chosen if n != output]
        if layers is not None and not chosen:
            raise ConfigError(f"layers={list(layers)} names only the output layer {output!r}, which is left whole "
                              f"by default; pass include_output=True (--include-output) to prune its weights")
    if not chosen:
        raise ConfigError(f"nothing to prune with method={method!r}: the only prunable layer is the output layer "
                          f"{output!r}; its weights are pruned with include_output=True (--include-output), "
                          f"its units are never removed")
    return [(n, m) for n, m in candidates if n in chosen]


def _match(names: list[str], patterns: Sequence[str]) -> list[str]:
    if isinstance(patterns, str):
        patterns = [patterns]
    if not patterns:
        raise ConfigError(f"layers= is empty; give patterns such as {names[0]!r} or '*'")
    chosen: set[str] = set()
    for pattern in patterns:
        hits = fnmatch.filter(names, pattern)
        if not hits:
            raise ConfigError(
                f"layer pattern {pattern!r} matches no prunable layer; prunable layers: "
                f"{', '.join(names)}"
            )
        chosen.update(hits)
    return [n for n in names if n in chosen]


@dataclass(frozen=True)
class UnitGroup:
    """The parameters of the units of one layer (see the module docstring).

    Attributes:
        layer: module name of the Linear/Conv2d layer.
        weight: parameter name of its weight; units index dim 0.
        weight_shape: shape of the weight.
        extras: names of 1-D parameters with one entry per unit (bias, BatchNorm weight/bias).
    """

    layer: str
    weight: str
    weight_shape: tuple[int, ...]
    extras: tuple[str, ...] = ()

    @property
    def num_units(self) -> int:
        return self.weight_shape[0]

    def expand(self, unit_keep: torch.Tensor) -> dict[str, torch.Tensor]:
        """Turn a 1-D unit keep mask into keep masks for all of the units' parameters."""
        unit_keep = unit_keep.to(torch.bool).reshape(-1)
        view = (-1,) + (1,) * (len(self.weight_shape) - 1)
        out = {self.weight: unit_keep.reshape(view).expand(self.weight_shape).clone()}
        out.update({name: unit_keep.clone() for name in self.extras})
        return out


def unit_groups(model: nn.Module, layers: list[tuple[str, nn.Module]]) -> list[UnitGroup]:
    """The :class:`UnitGroup` of each given layer (bias and following BatchNorm included)."""
    following = _next_leaf(model)
    groups = []
    for name, module in layers:
        extras = []
        if getattr(module, "bias", None) is not None:
            extras.append(param_name(name, "bias"))
        bn_name, bn = following.get(name, (None, None))
        out = module.weight.shape[0]
        if isinstance(bn, nn.modules.batchnorm._BatchNorm) and bn.num_features == out:
            extras += [param_name(bn_name, p) for p in ("weight", "bias") if getattr(bn, p) is not None]
        groups.append(UnitGroup(name, param_name(name, "weight"), tuple(module.weight.shape), tuple(extras)))
    return groups


def _next_leaf(model: nn.Module) -> dict[str, tuple[str, nn.Module]]:
    leaves = [(n, m) for n, m in model.named_modules() if not any(True for _ in m.children())]
    return {leaves[i][0]: leaves[i + 1] for i in range(len(leaves) - 1)}


def param_name(module_name: str, param: str) -> str:
    """Full parameter name, e.g. ``param_name("features.0", "weight") == "features.0.weight"``."""
    return f"{module_name}.{param}" if module_name else param
