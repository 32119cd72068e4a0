"""Calibration-based uniform quantization that holds a pruning mask: GPTQ (Frantar et al. 2023).

Per output channel, symmetric: ``scale[r] = max |w[r]| / q`` with ``q = 2^(bits-1) - 1``, as
:func:`~.uniform.quantize_uniform`. The columns are quantized one at a time, left to right; each column's
rounding error (its kept weights rounded to the grid, its pruned weights set back to exactly zero) is
spread over the columns to its right through the Cholesky factor of the inverse Hessian of the layer's
inputs (:func:`~prunekit.prune.sparsegpt.inverse_hessian_factor`), so the layer's outputs on the
calibration data move as little as they can. Pruned weights stay exactly zero (code 0).

:func:`gptq_model` runs it on every prunable layer of a model, in call order, each from its inputs in the
model as quantized so far (:func:`~prunekit.prune.calibration.layer_by_layer`).

Example:
    >>> _ = torch.manual_seed(0)
    >>> x = torch.randn(512, 16) @ torch.randn(16, 16)
    >>> w = torch.randn(8, 16) * (torch.rand(8, 16) > 0.5)
    >>> codes, scales = gptq_quantize(w, x.T @ x, 4)
    >>> bool((codes[w == 0] == 0).all()), int(codes.abs().max()) <= 7
    (True, True)
    >>> from prunekit.quantize import quantize_uniform, dequantize_uniform
    >>> def error(v): return float((x @ (v - w).T).pow(2).sum())
    >>> error(dequantize_uniform(codes, scales)) < error(dequantize_uniform(*quantize_uniform(w, 4)))
    True
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..prune.calibration import layer_by_layer, take_batches
from ..prune.sparsegpt import inverse_hessian_factor
from .codes import QuantizedWeight
from .uniform import check_bits


def gptq_quantize(weight: Tensor, hessian: Tensor, bits: int, *, keep: Optional[Tensor] = None,
                  block_size: int = 128, damp: float = 0.01, name: str = "the layer") -> tuple[Tensor, Tensor]:
    """``(codes, scales)`` of the ``[rows, cols]`` ``weight`` (int8 codes of its shape, fp32 per-row scales),
    given its inputs' ``[cols, cols]`` ``hessian``; entries outside ``keep`` (default: the non-zero ones)
    get code 0.

    Raises:
        ConfigError: for bits outside 2-8, NaN or infinite weights, or a Hessian that cannot be factorised.
    """
    check_bits(bits, low=2)
    if not torch.isfinite(weight).all():
        raise ConfigError(f"{name}: the weights hold NaN or infinite values; quantization needs finite weights")
    rows, cols = weight.shape
    keep = (weight != 0) if keep is None else keep.to(torch.bool)
    top = 2 ** (bits - 1) - 1
    w = weight.detach().to(torch.float64) * keep
    scales = (w.abs().amax(dim=1) / top).to(torch.float32)
    safe = torch.where(scales > 0, scales, torch.ones_like(scales)).to(torch.float64)
    u = inverse_hessian_factor(hessian, damp, name)
    kept = keep.T.to(torch.float64)  # [cols, rows]
    wt = w.T.contiguous()
    codes = torch.zeros(cols, rows, dtype=torch.float64)
    for start in range(0, cols, block_size):
        end = min(start + block_size, cols)
        block, errors = wt[start:end].clone(), torch.zeros(end - start, rows, dtype=torch.float64)
        inverse = u[start:end, start:end]
        for i in range(end - start):
            column = block[i]
            code = torch.round(column / safe).clamp_(-top, top).mul_(kept[start + i])
            codes[start + i] = code
            error = torch.sub(column, code * safe, out=errors[i]).div_(inverse[i, i])
            block[i:].addr_(inverse[i, i:], error, alpha=-1)
        wt[end:] -= u[start:end, end:].T @ errors
    return codes.T.to(torch.int8).contiguous(), scales


def gptq_model(model: nn.Module, layers: Mapping[str, nn.Module], calibration: Any, bits: Callable[[str, nn.Module], int],
               *, batches: int = 32, batch_size: int = 128, damp: float = 0.01,
               progress: bool = True) -> dict[str, QuantizedWeight]:
    """Quantize the weights of ``layers`` of ``model`` in place with :func:`gptq_quantize`, each with
    ``bits(name, module)`` bits, in call order on ``batches`` batches of ``calibration``; the quantized
    form of each, by parameter name. Zero weights (pruned) stay exactly zero.

    Raises:
        ConfigError: for bits outside 2-8, a layer the calibration data never reach, or no data.
    """
    quantized: dict[str, QuantizedWeight] = {}

    def visit(name: str, module: nn.Module, stats: dict[str, Tensor]) -> None:
        weight = module.weight
        groups = stats["hessian"].shape[0]
        if groups != 1:
            raise ConfigError(f"{name}: GPTQ quantizes Linear layers and ungrouped convolutions, not a conv of "
                              f"{groups} groups; use round-to-nearest for it")
        flat = weight.detach().reshape(weight.shape[0], -1).cpu()
        codes, scales = gptq_quantize(flat, stats["hessian"][0].cpu(), bits(name, module), damp=damp, name=name)
        q = QuantizedWeight.from_codes(f"{name}.weight", tuple(weight.shape), codes.reshape(weight.shape), scales,
                                       bits(name, module))
        with torch.no_grad():
            weight.copy_(q.dense().to(weight))
        quantized[q.name] = q

    layer_by_layer(model, dict(layers), take_batches(calibration, batches, batch_size), ("hessian",), visit,
                   desc="gptq", progress=progress)
    return quantized
