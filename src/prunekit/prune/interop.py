"""Move between prunekit masks and PyTorch's own ``torch.nn.utils.prune``.

PyTorch's functions re-parametrise a pruned tensor ``weight`` as a parameter ``weight_orig``,
a buffer ``weight_mask`` and a forward pre-hook computing ``weight = weight_orig * weight_mask``.
prunekit keeps plain parameters (zeros held in place) and a separate :class:`Mask`.

Example:
    >>> import torch.nn.utils.prune as torch_prune
    >>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> _ = torch_prune.l1_unstructured(model[0], "weight", amount=0.5)
    >>> model, mask = from_torch_prune(model)
    >>> sorted(mask), mask.sparsity()
    (['0.weight'], 50.0)
    >>> model = to_torch_prune(model, mask)
    >>> hasattr(model[0], "weight_orig")
    True
"""

from __future__ import annotations

import copy
from typing import Mapping

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from prunekit.errors import ConfigError
from prunekit.prune.mask import Mask, as_mask


def torch_pruned_parameters(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    """``(module name, module, tensor name)`` of every tensor pruned with ``torch.nn.utils.prune``."""
    found = []
    for module_name, module in model.named_modules():
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, torch_prune.BasePruningMethod):
                found.append((module_name, module, hook._tensor_name))
    return found


def from_torch_prune(model: nn.Module, *, inplace: bool = True) -> tuple[nn.Module, Mask]:
    """Turn a model pruned with ``torch.nn.utils.prune`` into a plain model and a :class:`Mask`.

    Every re-parametrised tensor becomes a plain parameter again holding ``orig * mask`` (the
    same object as ``<name>_orig``, so optimizers keep working), its mask is removed from the
    model and returned in the :class:`Mask`, keyed by the plain parameter name.

    Args:
        model: the model; it may have no pruned tensor (the mask is then empty).
        inplace: convert ``model`` itself; ``False`` converts a copy and leaves ``model`` as it is.

    Returns:
        ``(model, mask)``.
    """
    if not inplace:
        model = _copy_pruned(model)
    entries = {}
    for module_name, module, name in torch_pruned_parameters(model):
        keep = getattr(module, f"{name}_mask").detach().to(torch.bool).cpu()
        torch_prune.remove(module, name)
        entries[f"{module_name}.{name}" if module_name else name] = keep
    return model, Mask(entries)


def _copy_pruned(model: nn.Module) -> nn.Module:
    """``copy.deepcopy`` of a torch-pruned model (its computed tensors are detached for the copy)."""
    saved = []
    for _, module, name in torch_pruned_parameters(model):
        value = getattr(module, name)
        saved.append((module, name, value))
        setattr(module, name, value.detach())
    try:
        return copy.deepcopy(model)
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


def to_torch_prune(model: nn.Module, mask: Mapping[str, torch.Tensor]) -> nn.Module:
    """Re-parametrise every masked parameter with ``torch.nn.utils.prune.custom_from_mask``.

    Args:
        model: a plain model (modified in place).
        mask: a :class:`Mask` (or ``{name: bool tensor}``) of ``model``'s parameters.

    Returns:
        ``model``, now holding ``<name>_orig`` parameters and ``<name>_mask`` buffers.

    Raises:
        CheckpointError: if the mask does not fit the model.
    """
    mask = as_mask(mask)
    mask.validate(model)
    for name, keep in mask.items():
        module_name, _, tensor = name.rpartition(".")
        module = model.get_submodule(module_name) if module_name else model
        if not isinstance(getattr(module, tensor), nn.Parameter):
            raise ConfigError(f"{name} is not a plain parameter; torch.nn.utils.prune cannot mask it")
        device = getattr(module, tensor).device
        torch_prune.custom_from_mask(module, tensor, keep.to(device))
    return model
