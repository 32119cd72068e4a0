"""Sparse inference: run weight-pruned linear layers with sparse kernels where that is faster.

:class:`SparseLinear` holds a layer's weight densely and (built on first use) in each sparse kernel's form:
prunekit's own CSR and bitmask (:mod:`prunekit.kernels`), ``scipy.sparse.csr_matrix``, ``torch.sparse_csr``.
For each batch size it picks, by measuring on the real input (median of repeats, kernels interleaved), the
fastest of ``dense`` and the sparse kernels (:data:`DEFAULT_KERNELS`; ``torch_csr`` too with
``kernels=KERNELS``); a sparse kernel must beat dense by ``1 - MARGIN`` (10%) to be chosen, and is not even
tried above its density limit, so the choice falls back to dense whenever sparse is not clearly faster.
Conv layers always run dense (remove filters with :func:`~prunekit.prune.compact.compact`).

:func:`sparsify` turns a (masked) model into such a runner. For a whole test set at once,
:func:`~prunekit.fast_eval.fast_forward` uses a cheaper, rule-based choice.

Example:
    >>> from prunekit.prune import prune_model
    >>> from prunekit.models import get_model
    >>> model = get_model("mlp", seed=0); mask = prune_model(model, "weight", 95.0)
    >>> runner = sparsify(model, batch_sizes=(1, 256), input_shape=(1, 28, 28), repeats=5)
    >>> chosen = {k for layer in kernel_choices(runner).values() for k in layer.values()}  # measured here
    >>> chosen <= {"dense", "scipy_csr", "prunekit_csr", "prunekit_bitmask"}  # all dense: an nn.Linear again
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
from ..timing import Timer, cold_timer, last_level_cache_bytes, wall_timer
from .sparse_linear import (DEFAULT_KERNELS, KERNELS, MARGIN, MAX_SPARSE_DENSITY, SPARSE_KERNELS,
                            SparseLinear, kernel_density_limit, usable_kernels)

__all__ = ["DEFAULT_KERNELS", "KERNELS", "MARGIN", "MAX_SPARSE_DENSITY", "SPARSE_KERNELS", "SparseLinear", "is_conv1d",
           "is_linear_layer", "kernel_choices", "kernel_plan", "replace_linears", "replace_sparse", "sparse_enough",
           "sparsify"]


def replace_linears(model: nn.Module, make: Callable[[str, nn.Linear], Optional[nn.Module]]) -> nn.Module:
    """Replace, in place, each ``nn.Linear`` (and transformers' ``Conv1D``, seen as the ``nn.Linear`` it
    computes) for which ``make(name, layer)`` returns a module."""
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            linear = as_linear(child)
            if linear is not None:
                full = f"{name}.{child_name}" if name else child_name
                new = make(full, linear)
                if new is not None:
                    setattr(module, child_name, new)
    return model


def as_linear(module: nn.Module) -> Optional[nn.Linear]:
    """``module`` if it is an ``nn.Linear``; transformers' ``Conv1D`` (``y = x W + b``, ``W`` of shape
    ``[in, out]``) as an ``nn.Linear`` with the transposed weight; else ``None``.

    Example:
        >>> as_linear(nn.Linear(3, 2)).out_features, as_linear(nn.ReLU())
        (2, None)
    """
    if type(module) is nn.Linear:
        return module
    if is_conv1d(module):
        weight = module.weight.detach()
        linear = nn.Linear(weight.shape[0], weight.shape[1], bias=module.bias is not None, device=weight.device,
                           dtype=weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(weight.T)
            if module.bias is not None:
                linear.bias.copy_(module.bias)
        return linear
    return None


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
    values: str = "fp32",
    plan: Optional[Mapping[str, Mapping[Any, str]]] = None,
) -> nn.Module:
    """A copy of ``model`` (masked, eval mode) whose sparse Linear layers are :class:`SparseLinear`.

    Only layers sparse enough for some kernel (:func:`~.sparse_linear.kernel_density_limit`) are replaced,
    ``nn.Linear`` and transformers' ``Conv1D`` (GPT-2's transposed linear layer); after calibrating
    ``batch_sizes``, a layer that chose dense for every one of them is a plain ``nn.Linear`` again,
    so the runner adds no overhead where sparse kernels do not pay.

    Args:
        model: the model (not modified).
        mask: optional mask applied to the copy.
        batch_sizes: batch sizes to calibrate now (others calibrate on first use).
        input_shape: one sample's shape, needed with ``batch_sizes`` (e.g. ``(1, 28, 28)``) unless
            ``example_inputs`` (one batch of any form, resized to each batch size) is given.
        chunk, repeats, timer, kernels, values: see :class:`SparseLinear`.
        plan: ``{layer: {batch size: kernel}}`` from :func:`kernel_plan`: those layers run those kernels, no
            measuring (other batch sizes are measured on first use), the other layers stay dense.

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
    if plan is not None:
        return _apply_plan(runner, plan, chunk=chunk, repeats=repeats, timer=timer, kernels=kernels, values=values)
    if linear_bytes(runner) > last_level_cache_bytes():  # weights stream from memory: time layers cold
        timer = cold_timer(timer)

    def make(name: str, layer: nn.Linear) -> Optional[nn.Module]:
        sparse = SparseLinear(layer, chunk=chunk, repeats=repeats, timer=timer, kernels=kernels, values=values)
        return sparse if _tried_at(sparse.density, sparse.kernels) else None

    replace_linears(runner, make)
    if batch_sizes:
        inputs = make_inputs(input_shape, example_inputs)
        with torch.inference_mode():
            for batch in batch_sizes:
                args, kwargs = inputs(batch)
                runner(*args, **kwargs)
        replace_sparse(runner, lambda m: m.to_linear() if set(m.choice.values()) == {"dense"} else None)
    return runner


def sparse_enough(weight: Tensor, kernels: Sequence[str] = DEFAULT_KERNELS) -> bool:
    """Whether some sparse kernel of ``kernels`` (built here) is tried at ``weight``'s density: the layers
    :func:`sparsify` replaces.

    Example:
        >>> sparse_enough(torch.ones(4, 4)), sparse_enough(torch.eye(4))
        (False, True)
    """
    return _tried_at(float(torch.count_nonzero(weight)) / max(weight.numel(), 1), usable_kernels(kernels))


def _tried_at(density: float, kernels: Sequence[str]) -> bool:
    return any(k != "dense" and density <= kernel_density_limit(k) for k in kernels)


def is_linear_layer(module: nn.Module) -> bool:
    """An ``nn.Linear``, transformers' ``Conv1D`` or a :class:`SparseLinear` (a layer :func:`sparsify` made)."""
    return isinstance(module, (nn.Linear, SparseLinear)) or is_conv1d(module)


def is_conv1d(module: nn.Module) -> bool:
    """Whether ``module`` is transformers' ``Conv1D`` (GPT-2's linear layer, weight ``[in, out]``)."""
    return type(module).__name__ == "Conv1D" and type(module).__module__.startswith("transformers")


def linear_bytes(model: nn.Module) -> int:
    """Bytes of the weights of ``model``'s linear layers (``nn.Linear``, ``Conv1D``): more than the last-level
    cache and a forward pass reads them from memory, so :func:`sparsify` times its layers with cold caches.

    Example:
        >>> linear_bytes(nn.Sequential(nn.Linear(4, 2), nn.ReLU(), nn.Linear(2, 1)))  # 10 fp32 weights
        40
    """
    return sum(m.weight.numel() * m.weight.element_size() for m in model.modules()
               if isinstance(m, nn.Linear) or is_conv1d(m))


def kernel_plan(model: nn.Module) -> dict[str, dict[str, str]]:
    """``{layer: {batch size: kernel}}`` of a sparsified model, as JSON-ready strings: save it beside the model
    and pass it to :func:`sparsify` (``plan=``) to run the same kernels without measuring again."""
    return {name: {str(batch): kernel for batch, kernel in sorted(choice.items())}
            for name, choice in kernel_choices(model).items()}


def _apply_plan(runner: nn.Module, plan: Mapping[str, Mapping[Any, str]], **settings: Any) -> nn.Module:
    for layer, choices in plan.items():
        for batch, kernel in choices.items():
            if kernel not in KERNELS:
                raise ConfigError(f"kernel plan: unknown kernel {kernel!r} for {layer} at batch {batch}; expected one "
                                  f"of {KERNELS}")
            if not str(batch).isdigit() or int(batch) < 1:
                raise ConfigError(f"kernel plan: {layer}: batch sizes are positive integers, got {batch!r}")

    def make(name: str, layer: nn.Linear) -> Optional[nn.Module]:
        if name not in plan:
            return None
        sparse = SparseLinear(layer, **settings)
        for batch, kernel in plan[name].items():
            sparse.choice[int(batch)] = kernel if kernel in sparse.kernels else "dense"
        return sparse

    replace_linears(runner, make)
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
