"""A quantized weight as it is stored: the positions of its non-zero weights, one code per position, and
the table that turns codes back into values (a codebook of shared weights, or per-channel scales).

Example:
    >>> import torch
    >>> w = torch.tensor([[0.0, 0.5, 0.0], [-0.5, 0.0, 0.5]])
    >>> q = QuantizedWeight.from_uniform("fc.weight", w, 8)
    >>> q.positions.tolist(), q.codes.tolist()
    ([1, 3, 5], [254, 0, 254])
    >>> torch.equal(q.dense(), w)
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .uniform import quantize_uniform

KINDS = ("shared", "uniform")
"""``shared``: ``value = table[code]`` (k-means centroids); ``uniform``: ``value = (code - q) * table[row]``
with ``q = 2^(bits-1) - 1`` (per-channel scales, zero never coded)."""


@dataclass(frozen=True)
class QuantizedWeight:
    """One weight tensor: ``shape``, ``kind`` (:data:`KINDS`), ``bits``, the sorted flat ``positions`` of its
    non-zero entries (int64), one ``codes`` symbol in ``[0, 2^bits)`` per position (int64) and the fp32
    ``table`` (centroids or per-row scales)."""

    name: str
    shape: tuple[int, ...]
    kind: str
    bits: int
    positions: Tensor
    codes: Tensor
    table: Tensor

    @property
    def symbols(self) -> int:
        """How many code symbols the kind and bit width allow."""
        return 2 ** self.bits

    def dense(self) -> Tensor:
        """The fp32 weight the codes stand for (zeros where no position is stored)."""
        numel = 1
        for size in self.shape:
            numel *= size
        flat = torch.zeros(numel, dtype=torch.float32)
        if self.kind == "shared":
            values = self.table[self.codes]
        else:
            row_size = numel // self.shape[0] if self.shape and self.shape[0] else 1
            values = (self.codes - (2 ** (self.bits - 1) - 1)).to(torch.float32) * self.table[self.positions // row_size]
        flat[self.positions] = values
        return flat.reshape(self.shape)

    @classmethod
    def from_uniform(cls, name: str, weight: Tensor, bits: int) -> "QuantizedWeight":
        """Per-channel symmetric quantization of ``weight`` (:func:`~.uniform.quantize_uniform`): zeros,
        pruned or rounded, are not stored."""
        codes, scales = quantize_uniform(weight, bits)
        return cls.from_codes(name, tuple(weight.shape), codes, scales, bits)

    @classmethod
    def from_codes(cls, name: str, shape: tuple[int, ...], codes: Tensor, scales: Tensor, bits: int) -> "QuantizedWeight":
        """The stored form of signed per-channel ``codes`` (in ``[-q, q]``, any integer dtype) with their
        fp32 ``scales`` (one per output channel): code 0 is not stored."""
        flat = codes.reshape(-1).to(torch.int64)
        positions = torch.nonzero(flat, as_tuple=True)[0]
        symbols = flat[positions] + (2 ** (bits - 1) - 1)
        return cls(name, tuple(shape), "uniform", bits, positions, symbols, scales.to(torch.float32))

    def check(self) -> "QuantizedWeight":
        """Itself, after checking that its parts agree (what a loader checks before decoding values)."""
        numel = 1
        for size in self.shape:
            numel *= size
        if self.kind not in KINDS:
            raise ConfigError(f"{self.name}: unknown quantization kind {self.kind!r} (expected one of {KINDS})")
        if self.codes.shape != self.positions.shape:
            raise ConfigError(f"{self.name}: {self.codes.numel()} codes for {self.positions.numel()} positions")
        if self.positions.numel() and (int(self.positions[-1]) >= numel or int(self.positions[0]) < 0):
            raise ConfigError(f"{self.name}: a position lies outside the tensor of shape {list(self.shape)}")
        if self.codes.numel() and int(self.codes.max()) >= self.symbols:
            raise ConfigError(f"{self.name}: a code is out of range for {self.bits} bits")
        rows = self.shape[0] if self.shape else 1
        want = self.symbols if self.kind == "shared" else rows
        if self.table.numel() != want:
            raise ConfigError(f"{self.name}: a table of {self.table.numel()} values where {want} are expected")
        return self


def round_layers(layers: Mapping[str, nn.Module], bits: Callable[[str, nn.Module], int]) -> dict[str, QuantizedWeight]:
    """Round the weight of every layer in ``layers`` to its per-channel symmetric grid of ``bits(name, layer)``
    bits, in place (the layers then hold the quantized values; zeros stay zero); the quantized form of each,
    by parameter name.

    Example:
        >>> from torch import nn
        >>> layer = nn.Linear(4, 2)
        >>> quantized = round_layers({"fc": layer}, lambda name, module: 4)
        >>> torch.equal(quantized["fc.weight"].dense(), layer.weight.detach())
        True
    """
    quantized = {}
    for name, module in layers.items():
        key = f"{name}.weight" if name else "weight"
        q = QuantizedWeight.from_uniform(key, module.weight.detach().cpu().float(), bits(name, module))
        with torch.no_grad():
            module.weight.copy_(q.dense().to(module.weight))
        quantized[key] = q
    return quantized
