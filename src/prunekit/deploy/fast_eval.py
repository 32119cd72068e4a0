"""Fast evaluation of a pruned model on a whole test set (what a sweep calls per point).

:func:`fast_model` makes the cheapest exact runner of a masked model: it compacts the model
(dead units of unit-pruned layers vanish: a smaller dense model), then runs each remaining
Linear whose density is below a fixed **crossover density** (:data:`EVALUATION_RULE`) with a chunked
sparse kernel. The rule is a constant, not a measurement: a kernel picked by timing would pick
differently under another load, and sparse and dense kernels round differently, so a point's loss
(and, at a tie, its accuracy) would depend on what else the machine was doing.
:func:`crossover_densities` measures where each kernel pays on this machine (the figures the rule
was set from); pass its result as ``crossover=`` to use it, at the price of that determinism.

Example:
    >>> from prunekit.models import get_model
    >>> from prunekit.prune import prune_model
    >>> from prunekit.training import evaluate
    >>> model = get_model("mlp", seed=0)
    >>> mask = prune_model(model, "weight", 95.0)
    >>> x, y = torch.randn(500, 1, 28, 28), torch.randint(0, 10, (500,))
    >>> fast_evaluate(model, None, x, y)["accuracy"] == evaluate(model, x, y)["accuracy"]
    True
"""

from __future__ import annotations

import copy
import math
from typing import Mapping, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..compact import compact
from ..prune.mask import as_mask
from ..structure import walkable
from ..timing import measure
from .sparse_linear import MARGIN, MAX_SPARSE_DENSITY, SparseLinear

LIBRARY_KERNELS = ("torch_csr", "scipy_csr")
"""The kernels :func:`crossover_densities` measures."""
from .sparsify import replace_linears

_CROSSOVER: dict[int, dict[str, float]] = {}
CALIBRATION_DENSITY = 0.05
EVALUATION_RULE = {"torch_csr": 0.08}
"""``{kernel: density}``: layers below the density run with that sparse kernel in :func:`fast_model`.
Measured on the development machine (2 cores): torch's CSR beats dense below 0.07-0.09 density with
2 threads and 0.11-0.13 with 1; its outputs are bit-identical for 1 and 2 threads."""


def crossover_densities(*, refresh: bool = False) -> dict[str, float]:
    """``{sparse kernel: density below which it beats dense}`` on this machine (cached per thread count).

    Example:
        >>> sorted(crossover_densities())
        ['scipy_csr', 'torch_csr']
    """
    threads = torch.get_num_threads()
    if refresh or threads not in _CROSSOVER:
        _CROSSOVER[threads] = _calibrate()
    return dict(_CROSSOVER[threads])


@torch.inference_mode()
def _calibrate(size: int = 1024, chunk: int = 256) -> dict[str, float]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(size, size, generator=g)
    dense = nn.Linear(size, size, bias=False)
    sparse = copy.deepcopy(dense)
    sparse.weight.mul_(torch.rand(size, size, generator=g) < CALIBRATION_DENSITY)
    runner = SparseLinear(sparse, chunk=chunk)
    fns = {"dense": lambda: dense(x), **{k: (lambda k=k: runner.run(k, x)) for k in LIBRARY_KERNELS}}
    times = measure(fns, repeats=3, warmup=1)
    return {k: min(MAX_SPARSE_DENSITY, MARGIN * runner.density * times["dense"] / times[k]) for k in LIBRARY_KERNELS}


def fast_model(
    model: nn.Module,
    mask: Optional[Mapping[str, Tensor]] = None,
    *,
    crossover: Optional[Mapping[str, float]] = None,
    chunk: int = 256,
) -> nn.Module:
    """The masked model, compacted (an ``nn.Sequential`` with dead units) and with sparse kernels where they pay.

    Cheap to build: without ``mask`` and without dead units nothing is copied (the result shares
    the unchanged layers, and the weights of its sparse layers, with ``model``; do not modify
    ``model`` while using it).

    Args:
        model: the model (not modified).
        mask: optional mask, applied to a copy; pass ``None`` when it is already applied to the
            weights (as :func:`~prunekit.prune.prune_model` leaves them), which saves that copy.
        crossover: ``{sparse kernel: density}`` overriding :data:`EVALUATION_RULE` (e.g. the measured
            :func:`crossover_densities`).
        chunk: rows per sparse-kernel call.

    Returns:
        A model whose outputs (in eval mode) equal the masked model's up to float rounding, and are
        the same from run to run whatever the machine's load.

    """
    if mask is not None:
        model = copy.deepcopy(model)
        as_mask(mask).apply_(model)
    if walkable(model) and _has_dead_units(model):
        model = compact(model).model
    rule = dict(crossover) if crossover is not None else EVALUATION_RULE
    kernel, limit = max(rule.items(), key=lambda kv: kv[1])

    def make(name: str, layer: nn.Linear) -> Optional[nn.Module]:
        runner = SparseLinear(layer, chunk=chunk)
        runner.default = kernel
        return runner if runner.density < limit else None

    return replace_linears(shallow_copy(model), make)


def _has_dead_units(model: nn.Module) -> bool:
    """Whether any Linear/Conv2d but the last has a row or filter of zeros (compaction may remove it)."""
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))][:-1]
    return any(bool((torch.count_nonzero(m.weight.detach().reshape(m.weight.shape[0], -1), dim=1) == 0).any())
               for m in layers)


def shallow_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module``'s container structure that shares every leaf module (no tensor is copied)."""
    if not module._modules:
        return module
    new = copy.copy(module)
    new._modules = {name: shallow_copy(child) if child is not None else None
                    for name, child in module._modules.items()}
    return new


@torch.inference_mode()
def fast_forward(model: nn.Module, mask: Optional[Mapping[str, Tensor]], x: Tensor, **kwargs) -> Tensor:
    """Outputs of the masked ``model`` in eval mode on ``x`` (e.g. all 10,000 test images), fast.

    Same outputs as the masked model (argmax identical; float rounding only). Pass ``mask=None``
    if it is already applied to the weights. ``kwargs`` go to :func:`fast_model`.

    """
    was_training = model.training
    model.eval()
    try:
        return fast_model(model, mask, **kwargs).eval()(x)
    finally:
        model.train(was_training)


def fast_evaluate(model: nn.Module, mask: Optional[Mapping[str, Tensor]], x: Tensor, y: Tensor,
                  **kwargs) -> dict[str, float]:
    """Accuracy (a fraction) and mean cross-entropy of the masked ``model`` on ``(x, y)``, fast.

    The loss is summed exactly (``math.fsum`` of the per-sample losses), so it does not depend on how
    many threads computed it.
    """
    logits = fast_forward(model, mask, x, **kwargs)
    losses = F.cross_entropy(logits, y, reduction="none")
    return {"accuracy": (logits.argmax(1) == y).sum().item() / len(y),
            "loss": math.fsum(losses.double().tolist()) / len(y)}
