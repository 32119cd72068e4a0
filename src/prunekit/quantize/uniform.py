"""Uniform quantization that keeps zeros: per output channel, symmetric, zero is code 0.

A weight ``w`` of channel ``c`` becomes ``round(w / scale[c])`` clamped to ``[-q, q]`` with
``q = 2^(bits-1) - 1`` and ``scale[c] = max |w[c]| / q``: a pruned weight stays exactly zero, and
a kept weight that rounds to zero only adds sparsity.

Example:
    >>> import torch
    >>> w = torch.tensor([[0.0, 1.0, -0.5], [0.0, 0.0, 0.25]])
    >>> codes, scales = quantize_uniform(w, 8)
    >>> codes.tolist(), [round(s, 5) for s in scales.tolist()]
    ([[0, 127, -64], [0, 0, 127]], [0.00787, 0.00197])
    >>> (dequantize_uniform(codes, scales) - w).abs().max().item() < 0.004
    True
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError
from ..kernels import PackedWeight


def check_bits(bits: int, *, low: int = 1, high: int = 8) -> int:
    """``bits`` if it is an integer in ``[low, high]``, else a ConfigError saying what is expected."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not low <= bits <= high:
        raise ConfigError(f"bits must be an integer from {low} to {high}, got {bits!r}")
    return bits


def quantize_uniform(weight: Tensor, bits: int) -> tuple[Tensor, Tensor]:
    """``(codes, scales)``: integer codes of ``weight``'s shape (int8 storage) and one fp32 scale per output
    channel (dim 0). ``bits`` from 2 to 8 (int4 is 4)."""
    check_bits(bits, low=2)
    if not torch.isfinite(weight).all():
        raise ConfigError("the weights hold NaN or infinite values; quantization needs finite weights")
    top = 2 ** (bits - 1) - 1
    rows = weight.detach().reshape(weight.shape[0], -1).to(torch.float32)
    scales = rows.abs().amax(dim=1) / top
    safe = torch.where(scales > 0, scales, torch.ones_like(scales))
    codes = torch.round(rows / safe[:, None]).clamp(-top, top).to(torch.int8)
    return codes.reshape(weight.shape), scales


def dequantize_uniform(codes: Tensor, scales: Tensor) -> Tensor:
    """The fp32 weight ``codes * scale`` of each output channel."""
    rows = codes.reshape(codes.shape[0], -1).to(torch.float32) * scales[:, None]
    return rows.reshape(codes.shape)


def pack_int8(weight: Tensor, form: str, *, pattern: tuple[int, int] | None = None) -> PackedWeight:
    """``weight`` quantized to 8 bits (:func:`quantize_uniform`) and packed for prunekit's sparse kernels with
    int8 values: its non-zero codes and one scale per row. A weight that is already such codes times their
    scales (``prunekit compress --quantization uniform --bits 8``) gets the same codes back.

    Example:
        >>> packed = pack_int8(torch.tensor([[0.0, 1.0, -0.5], [0.0, 0.0, 0.25]]), "csr")
        >>> packed.values[:packed.nnz].tolist(), packed.nnz
        ([127, -64, 127], 3)
    """
    codes, scales = quantize_uniform(weight, 8)
    return PackedWeight.pack(codes.float(), form, values="int8", pattern=pattern, scales=scales)
