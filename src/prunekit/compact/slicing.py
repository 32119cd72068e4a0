"""Slicing helpers of compaction: keep some output units of a layer, or some of its inputs, in place.

Each replaces the module's parameters by new ones (advanced indexing copies) and updates the
size attributes the constructor would set (``out_features``, ``in_channels``, ``num_features``...),
so :func:`~prunekit.architecture.architecture_to_json` describes the result.
"""

from __future__ import annotations

import torch
from torch import nn


def _param(t: torch.Tensor, like: nn.Parameter) -> nn.Parameter:
    return nn.Parameter(t, requires_grad=like.requires_grad)  # t comes from advanced indexing: a copy


def take_outputs(layer: nn.Module, keep: torch.Tensor) -> None:
    """Keep the output units (rows / filters) ``keep`` of a Linear or Conv2d."""
    layer.weight = _param(layer.weight.detach()[keep], layer.weight)
    if layer.bias is not None:
        layer.bias = _param(layer.bias.detach()[keep], layer.bias)
    if isinstance(layer, nn.Linear):
        layer.out_features = keep.numel()
    else:
        layer.out_channels = keep.numel()


def take_inputs(layer: nn.Module, keep: torch.Tensor, factor: int) -> None:
    """Keep the inputs of ``keep`` (each a block of ``factor`` columns after a flatten) of a Linear or Conv2d."""
    cols = (keep[:, None] * factor + torch.arange(factor, device=keep.device)).reshape(-1)
    layer.weight = _param(layer.weight.detach()[:, cols], layer.weight)
    if isinstance(layer, nn.Linear):
        layer.in_features = cols.numel()
    else:
        layer.in_channels = cols.numel()


def take_bn(bn: nn.modules.batchnorm._BatchNorm, keep: torch.Tensor) -> None:
    """Keep the channels ``keep`` of a BatchNorm (affine parameters and running statistics)."""
    if bn.affine:
        bn.weight = _param(bn.weight.detach()[keep], bn.weight)
        bn.bias = _param(bn.bias.detach()[keep], bn.bias)
    bn.running_mean = bn.running_mean[keep]
    bn.running_var = bn.running_var[keep]
    bn.num_features = keep.numel()
