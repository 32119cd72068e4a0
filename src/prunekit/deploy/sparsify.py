"""Sparse inference: run weight-pruned ``nn.Linear`` layers with sparse kernels where that is faster.

:class:`SparseLinear` holds a layer's weight densely and (built on first use) as a
``torch.sparse_csr`` tensor and a ``scipy.sparse.csr_matrix``. For each batch size it picks,
by measuring on the real input (median of repeats, kernels interleaved), the fastest of
``dense`` and ``scipy_csr`` (and ``torch_csr`` with ``kernels=KERNELS``); a sparse kernel must beat dense by
``1 - MARGIN`` (10%) to be chosen, and is not even tried above :data:`MAX_SPARSE_DENSITY`,
so the choice falls back to dense whenever sparse is not clearly faster. Sparse kernels
process large batches in chunks of ``chunk`` rows (the dense operand then stays in cache).
Conv layers always run dense (remove filters with :func:`~prunekit.prune.compact.compact`).

:func:`sparsify` turns a (masked) model into such a runner. For a whole test set at once,
:func:`~prunekit.fast_eval.fast_forward` uses a cheaper, rule-based choice.

Example:
    >>> from prunekit.prune import prune_model
    >>> from prunekit.models import get_model
    >>> model = get_model("mlp", seed=0); mask = prune_model(model, "weight", 95.0)
    >>> runner = sparsify(model, batch_sizes=(1, 256), input_shape=(1, 28, 28), repeats=5)
    >>> chosen = {k for layer in kernel_choices(runner).values() for k in layer.values()}  # measured here
    >>> chosen <= {"dense", "scipy_csr"}  # a layer where dense won at every batch size is an nn.Linear again
    True
    >>> bool(torch.allclose(runner(torch.ones(2, 1, 28, 28)), model(torch.ones(2, 1, 28, 28)), atol=1e-4))
    True
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Mapping, Optional, Sequence

import torch
from torch import Tensor, nn

from ..batches import make_inputs
from ..errors import ConfigError
from ..prune.mask import as_mask
from ..timing import Timer, wall_timer
from .sparse_linear import (DEFAULT_KERNELS, KERNELS, MARGIN, MAX_SPARSE_DENSITY, SPARSE_KERNELS,
                            SparseLinear)

__all__ = ["DEFAULT_KERNELS", "KERNELS", "MARGIN", "MAX_SPARSE_DENSITY", "SPARSE_KERNELS", "SparseLinear",
           "kernel_choices", "replace_linears", "replace_sparse", "sparsify"]


def replace_linears(model: nn.Module, make: Callable[[str, nn.Linear], Optional[nn.Module]]) -> nn.Module:
    """Replace, in place, each ``nn.Linear`` for which ``make(name, layer)`` returns a module."""
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if type(child) is nn.Linear:
                full = f"{name}.{child_name}" if name else child_name
                new = make(full, child)
                if new is not None:
                    setattr(module, child_name, new)
    return model


def sparsify(
    model: nn.Module,
    mask: Optional[Mapping[str, Tensor]] = None,
    *,
    batch_sizes: Sequence[int] = (),
    input_shape: Optional[Sequence[int]] = None,
    example_inputs: Any = None,
    chunk: int = 256,
    repeats: int = 15,
    timer: Timer = wall_timer,
    kernels: Sequence[str] = DEFAULT_KERNELS,
) -> nn.Module:
    """A copy of ``model`` (masked, eval mode) whose sparse Linear layers are :class:`SparseLinear`.

    Only layers with density <= :data:`MAX_SPARSE_DENSITY` are replaced; after calibrating
    ``batch_sizes``, a layer that chose dense for every one of them is a plain ``nn.Linear`` again,
    so the runner adds no overhead where sparse kernels do not pay.

    Args:
        model: the model (not modified).
        mask: optional mask applied to the copy.
        batch_sizes: batch sizes to calibrate now (others calibrate on first use).
        input_shape: one sample's shape, needed with ``batch_sizes`` (e.g. ``(1, 28, 28)``) unless
            ``example_inputs`` (one batch of any form, resized to each batch size) is given.
        chunk, repeats, timer, kernels: see :class:`SparseLinear`.

    Returns:
        The runner; its outputs equal the masked model's up to float rounding.

    Example:
        >>> runner = sparsify(torch.nn.Linear(8, 2), batch_sizes=[1], input_shape=(8,))
    """
    if batch_sizes and input_shape is None and example_inputs is None:
        raise ConfigError("sparsify(batch_sizes=...) needs input_shape=, one sample's shape, e.g. (1, 28, 28), "
                          "or example_inputs=")
    runner = copy.deepcopy(model)
    if mask is not None:
        as_mask(mask).apply_(runner)
    runner.eval()

    def make(name: str, layer: nn.Linear) -> Optional[nn.Module]:
        sparse = SparseLinear(layer, chunk=chunk, repeats=repeats, timer=timer, kernels=kernels)
        return sparse if sparse.density <= MAX_SPARSE_DENSITY and len(sparse.kernels) > 1 else None

    replace_linears(runner, make)
    if batch_sizes:
        inputs = make_inputs(input_shape, example_inputs)
        with torch.inference_mode():
            for batch in batch_sizes:
                args, kwargs = inputs(batch)
                runner(*args, **kwargs)
        replace_sparse(runner, lambda m: m.to_linear() if set(m.choice.values()) == {"dense"} else None)
    return runner


def replace_sparse(model: nn.Module, make: Callable[[SparseLinear], Optional[nn.Module]]) -> nn.Module:
    """Replace, in place, each :class:`SparseLinear` for which ``make(layer)`` returns a module."""
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, SparseLinear) and (new := make(child)) is not None:
                setattr(module, child_name, new)
    return model


def kernel_choices(model: nn.Module) -> dict[str, dict[int, str]]:
    """``{layer name: {batch size: kernel}}`` of every :class:`SparseLinear` in ``model``."""
    return {name: dict(m.choice) for name, m in model.named_modules() if isinstance(m, SparseLinear)}
