"""How far a model's logits move when only the rounding of its linear layers changes: the floor under any
check that a kernel summing in another order "gives the same logits".

:func:`exact_linears` copies a model with its linear layers (all but the output head, or the ones named)
computed in fp64 and rounded once to fp32: more exact than any fp32 kernel, dense or sparse. The logits of
that copy differ from the model's by :func:`~prunekit.bench.generate.max_logit_difference` of it, which
:func:`rounding_floor` measures: a sparse kernel's difference from the dense model is to be read against it.

Example:
    >>> import tempfile
    >>> from prunekit.hf import load
    >>> from prunekit.hf.tiny import tiny_folder
    >>> model = load("hf:" + tiny_folder(tempfile.mkdtemp(), "llama")).model
    >>> 0.0 <= rounding_floor(model, tokens=8, decoded=2) < 1e-4
    True
"""

from __future__ import annotations

import copy
from typing import Optional, Sequence

import torch
from torch import nn

from ..deploy.sparsify import replace_linears
from ..errors import ConfigError
from .generate import max_logit_difference


class ExactLinear(nn.Module):
    """A linear layer computed in fp64 and rounded to its input's dtype once."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight", linear.weight.detach().double())
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().double())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x.double(), self.weight, self.bias).to(x.dtype)


def exact_linears(model: nn.Module, layers: Optional[Sequence[str]] = None) -> nn.Module:
    """A copy of ``model`` whose linear layers (``nn.Linear``, transformers' ``Conv1D``) named in ``layers``,
    or all but the output head, compute exactly (:class:`ExactLinear`).

    Raises:
        ConfigError: a name in ``layers`` that is not a linear layer of the model.
    """
    exact = copy.deepcopy(model).eval()
    head = exact.get_output_embeddings() if hasattr(exact, "get_output_embeddings") else None
    done = []

    def make(name: str, linear: nn.Linear) -> Optional[nn.Module]:
        chosen = name in layers if layers is not None else exact.get_submodule(name) is not head
        if not chosen:
            return None
        done.append(name)
        return ExactLinear(linear)

    replace_linears(exact, make)
    missing = sorted(set(layers or ()) - set(done))
    if missing:
        raise ConfigError(f"not linear layers of the model: {', '.join(missing)}")
    return exact


def rounding_floor(model: nn.Module, layers: Optional[Sequence[str]] = None, tokens: int = 64,
                   decoded: int = 16) -> float:
    """The largest difference between ``model``'s logits and those of :func:`exact_linears` (same prompt,
    decode steps and scale as the sparse kernels' check)."""
    return max_logit_difference(model, exact_linears(model, layers), tokens=tokens, decoded=decoded)
