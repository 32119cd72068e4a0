"""Re-estimating BatchNorm statistics after pruning ("adaptive BN", Li et al. 2020, EagleEye).

Removing channels shifts the activations every later BatchNorm normalises, so a pruned network evaluated
with the dense network's running statistics looks far worse than it is: once one coupled group of a
ResNet loses half its channels, plain evaluation often sits near chance however much of the network is
left, which says little about what fine-tuning will recover. Re-estimating the statistics on a few
batches (no gradients, no weight change) gives an accuracy that ranks pruned candidates much better.

Example:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8))
    >>> recalibrate_batchnorm(model, torch.randn(64, 4) * 3 + 1, batches=2, batch_size=32)
    64
    >>> bool(model[1].running_mean.abs().sum() > 0), model.training, model[1].momentum
    (True, True, 0.1)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..batches import as_source
from ..errors import ConfigError
from .device import model_device

BATCHNORMS = (nn.modules.batchnorm._BatchNorm,)


def has_batchnorm(model: nn.Module) -> bool:
    """Whether ``model`` holds a BatchNorm layer that tracks running statistics."""
    return any(isinstance(m, BATCHNORMS) and m.track_running_stats for m in model.modules())


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, data: Any, *, batches: int = 8, batch_size: int = 128) -> int:
    """Reset the running statistics of every BatchNorm in ``model`` and re-estimate them (a plain average)
    over the first ``batches`` batches of ``data``, in place; other layers run in eval mode (no dropout).
    The model's mode and the layers' momentum are restored, and the statistics too if anything fails. Returns the samples seen (0 without BatchNorm).

    ``data``: inputs alone, ``(x, y)`` tensors, a DataLoader or any form :func:`~prunekit.batches.as_source`
    takes (labels are not used).

    Raises:
        ConfigError: for a non-positive number of batches, or data that yields no batch.
    """
    if isinstance(batches, bool) or not isinstance(batches, int) or batches < 1:
        raise ConfigError(f"BatchNorm re-estimation needs a positive number of batches, got {batches!r}")
    norms = [m for m in model.modules() if isinstance(m, BATCHNORMS) and m.track_running_stats]
    if not norms:
        return 0
    if isinstance(data, torch.Tensor):
        data = (data, torch.zeros(len(data)))
    device = model_device(model)
    source = as_source(data, batch_size, seed=0, shuffle=False).to(device)
    modes = {m: m.training for m in model.modules()}
    momenta = [m.momentum for m in norms]
    saved = [{k: v.clone() for k, v in m.state_dict().items()} for m in norms]
    seen = 0
    try:
        model.eval()
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the batches seen
            m.train()
        for number, batch in enumerate(source.epoch(0)):
            if number == batches:
                break
            batch = batch.to(device)
            model(*batch.args, **batch.kwargs)
            seen += batch.size
        if not seen:
            raise ConfigError("BatchNorm re-estimation got no batch from its data")
    except BaseException:
        for m, state in zip(norms, saved):  # leave the statistics as they were
            m.load_state_dict(state)
        raise
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        for m, mode in modes.items():
            m.training = mode
    return seen
