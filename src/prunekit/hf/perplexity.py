"""Perplexity of a causal language model with the standard protocol: the held-out tokens cut into
non-overlapping windows of ``window`` tokens, each scored on its own (as the SparseGPT and Wanda reference
code does), the negative log-likelihood summed over every predicted token.

Example:
    >>> import torch
    >>> from torch import nn
    >>> class Uniform(nn.Module):  # predicts every one of 10 tokens alike: perplexity 10
    ...     def forward(self, input_ids):
    ...         return torch.zeros(*input_ids.shape, 10)
    >>> round(perplexity(Uniform(), torch.arange(100) % 10, window=16), 4)
    10.0
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..errors import ConfigError


@torch.inference_mode()
def perplexity(model: nn.Module, ids: torch.Tensor, window: int = 512, progress: bool = False) -> float:
    """``exp(mean NLL)`` of ``ids`` (1-D token ids) in non-overlapping windows of ``window`` tokens.

    Raises:
        ConfigError: for fewer than ``window + 1`` tokens, or a window below 2.
    """
    if window < 2 or len(ids) < window + 1:
        raise ConfigError(f"perplexity needs windows of at least 2 tokens and one full window; got "
                          f"{len(ids)} tokens, window {window}")
    device = next(model.parameters(), torch.empty(0)).device
    starts = range(0, len(ids) - window, window)
    total, count = 0.0, 0
    for start in tqdm(starts, desc="perplexity", unit="window", disable=None if progress else True):
        chunk = ids[start:start + window + 1].to(device)
        out = model(input_ids=chunk[:-1].unsqueeze(0))
        logits = (out if isinstance(out, torch.Tensor) else out.logits)[0].float()
        total += F.cross_entropy(logits, chunk[1:], reduction="sum").item()
        count += window
    return math.exp(total / count)
