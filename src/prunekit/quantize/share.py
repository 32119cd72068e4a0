"""Weight sharing with trained centroids (Han et al. 2016, section 3).

:func:`share_weights` clusters every prunable layer's non-zero weights into ``2^bits`` centroids and
puts a parametrization on its ``weight``: the weight becomes ``codebook[codes]`` where the mask keeps
a weight and exactly zero elsewhere. Training the model then trains the centroids: autograd sends each
centroid the sum of the gradients of the weights that share it (the paper's update), the codes and
the zeros stay fixed. :meth:`SharedWeights.freeze` bakes the weights back into plain parameters and
returns the :class:`~.codes.QuantizedWeight` of each layer, ready to be entropy-coded.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from prunekit.prune import prune_model
    >>> model = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 4))
    >>> _ = prune_model(model, "weight", 50.0, include_output=True)
    >>> shared = share_weights(model, 3)
    >>> model[0].weight.unique().numel() <= 2 ** 3 + 1   # eight centroids and the zeros
    True
    >>> loss = model(torch.randn(5, 20)).square().sum(); loss.backward()
    >>> shared.codebooks["0"].grad.shape
    torch.Size([8])
    >>> quantized = shared.freeze()
    >>> sorted(quantized), quantized["0.weight"].bits
    (['0.weight', '2.weight'], 3)
"""

from __future__ import annotations

import fnmatch

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Optional, Union

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ..errors import ConfigError
from ..prune.layers import prunable_layers
from .codes import QuantizedWeight
from .kmeans import kmeans_1d
from .uniform import check_bits

Bits = Union[int, Mapping[str, int]]
"""Bits for every layer (an int), or per layer kind: ``{"linear": 5, "conv": 8}`` (Han 2016 on AlexNet)."""
LAYER_KINDS = {nn.Linear: "linear", nn.Conv2d: "conv"}
KIND_NAMES = frozenset(LAYER_KINDS.values())


class _SharedWeight(nn.Module):
    """The parametrization: ``weight = codebook[codes]`` on the kept entries, zero on the others."""

    def __init__(self, codebook: Tensor, codes: Tensor, kept: Tensor):
        super().__init__()
        self.codebook = nn.Parameter(codebook)
        self.register_buffer("codes", codes)
        self.register_buffer("kept", kept)

    def forward(self, original: Tensor) -> Tensor:  # the original weight is not used: the codes replace it
        return torch.where(self.kept, self.codebook[self.codes], torch.zeros((), dtype=self.codebook.dtype))


def layer_bits(bits: Bits, module: nn.Module, name: str) -> int:
    """The bit width ``bits`` gives the layer ``name``: a key that is not a layer kind is a layer-name pattern
    (fnmatch) and wins over the kinds, e.g. ``{"conv": 5, "linear": 5, "conv1": 4}``.

    Example:
        >>> layer_bits({"conv": 5, "linear": 5, "conv1": 4}, nn.Conv2d(1, 2, 3), "conv1")
        4
    """
    if isinstance(bits, Mapping):
        for pattern, value in bits.items():
            if pattern not in KIND_NAMES and fnmatch.fnmatchcase(name, pattern):
                return check_bits(value)
        kind = LAYER_KINDS.get(type(module))
        if kind not in bits:
            raise ConfigError(f"no bits given for {name} (a {kind} layer); give bits for every layer kind "
                              f"({', '.join(sorted(KIND_NAMES))}) or for the layer by name")
        return check_bits(bits[kind])
    return check_bits(bits)


def check_bit_patterns(bits: Bits, names: list[str]) -> None:
    """Refuse layer-name patterns in ``bits`` that name none of the layers ``names``."""
    if isinstance(bits, Mapping):
        unmatched = [p for p in bits if p not in KIND_NAMES and not fnmatch.filter(names, p)]
        if unmatched:
            raise ConfigError(f"{unmatched[0]!r} in the bits is neither a layer kind ({', '.join(sorted(KIND_NAMES))}) "
                              f"nor the name of a layer to quantize; the model's are {names}")


@dataclass
class SharedWeights:
    """The layers :func:`share_weights` parametrized: their codebooks (trainable) and bit widths."""

    model: nn.Module
    layers: dict[str, nn.Module] = field(default_factory=dict)
    bits: dict[str, int] = field(default_factory=dict)

    @property
    def codebooks(self) -> dict[str, nn.Parameter]:
        """Each shared layer's codebook, by layer name."""
        return {name: module.parametrizations.weight[0].codebook for name, module in self.layers.items()}

    def freeze(self) -> dict[str, QuantizedWeight]:
        """Bake every shared weight into a plain parameter (the model then runs without prunekit) and
        return the quantized form of each, by parameter name."""
        quantized = {}
        for name, module in self.layers.items():
            shared = module.parametrizations.weight[0]
            kept = shared.kept.reshape(-1)
            positions = torch.nonzero(kept, as_tuple=True)[0]
            key = f"{name}.weight" if name else "weight"
            quantized[key] = QuantizedWeight(key, tuple(shared.kept.shape), "shared", self.bits[name], positions.cpu(),
                                             shared.codes.reshape(-1)[positions].cpu(),
                                             shared.codebook.detach().float().cpu().clone())
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
        self.layers.clear()
        return quantized


def share_weights(model: nn.Module, bits: Bits, *, layers: Optional[list[str]] = None) -> SharedWeights:
    """Share the weights of every prunable layer of ``model`` (or of the ``layers`` named) in place: k-means
    over its non-zero weights with ``2^bits`` centroids (linear initialisation); zeros stay exactly zero.

    Raises:
        ConfigError: bits outside 1-8, an unknown layer name, or a layer with fewer non-zero weights than
            centroids.
    """
    found = dict(prunable_layers(model))
    names = list(found) if layers is None else layers
    missing = [n for n in names if n not in found]
    if missing:
        raise ConfigError(f"no prunable layer named {missing[0]!r}; the model's are {list(found)}")
    check_bit_patterns(bits, names)
    shared = SharedWeights(model)
    for name in names:
        module = found[name]
        b = layer_bits(bits, module, name)
        weight = module.weight.detach()
        kept = weight != 0
        if not kept.any():
            raise ConfigError(f"{name} has no non-zero weights to share (a layer pruned whole); leave it out with "
                              f"layers=[...]")
        if kept.sum() < 2 ** b:
            raise ConfigError(f"{name} keeps {int(kept.sum())} non-zero weights, fewer than the {2 ** b} centroids of "
                              f"{b} bits; give it fewer bits by name (e.g. bits {{'{name}': {max(1, int(kept.sum()).bit_length() - 1)}, ...}}, "
                              f"--bits ...,{name}={max(1, int(kept.sum()).bit_length() - 1)})")
        centroids, codes = kmeans_1d(weight[kept], 2 ** b)
        full = torch.zeros(weight.shape, dtype=torch.int64, device=weight.device)
        full[kept] = codes.to(weight.device)
        shared.bits[name] = b
        shared.layers[name] = module
        parametrize.register_parametrization(
            module, "weight", _SharedWeight(centroids.to(weight), full, kept), unsafe=True)
    return shared
