"""Importance scores: pure functions from a weight tensor to an importance tensor.

A criterion is a callable ``criterion(weight, grad=None) -> Tensor`` where ``weight`` is the
*currently masked* weight of one layer (already-pruned entries are zero) and ``grad`` its
gradient (or ``None``). It returns either

* a tensor of the same shape as ``weight`` (one score per weight), or
* a 1-D tensor of length ``weight.shape[0]`` (one score per unit).

Higher score = more important = kept longer. A unit is an output neuron: in PyTorch layout
``nn.Linear.weight`` is ``[out, in]``, so a unit is a ROW (dim 0); for ``nn.Conv2d`` it is a
whole filter ``weight[i]``. (The reference study used TensorFlow's ``[in, out]`` layout, where
a unit is a column.) The ``grad`` argument lets gradient-based criteria (e.g. Taylor,
``|w * grad|``) be registered later without changing the pruning code.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from prunekit.errors import ConfigError
from prunekit.registry import Registry

Criterion = Callable[..., torch.Tensor]


def magnitude(w: torch.Tensor, grad: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Weight magnitude ``|w|`` (Han et al. 2015), same shape as ``w``.

    Args:
        w: a weight tensor.
        grad: ignored (accepted so all criteria share one signature).

    Returns:
        ``w.abs()``.

    Example:
        >>> magnitude(torch.tensor([-3.0, 1.0]))
        tensor([3., 1.])
    """
    return w.detach().abs()


def unit_l2(w: torch.Tensor, grad: Optional[torch.Tensor] = None) -> torch.Tensor:
    """L2 norm of each unit (output neuron / conv filter) over all other dims.

    For ``nn.Linear`` (``[out, in]``) this is the norm of each ROW; for ``nn.Conv2d``
    (``[out, in, kh, kw]``) the norm of each filter. In TensorFlow's ``[in, out]`` layout
    the same quantity is the norm of each column.

    Args:
        w: a weight tensor with at least one dim; dim 0 indexes the units.
        grad: ignored.

    Returns:
        A 1-D tensor of length ``w.shape[0]``.

    Example:
        >>> unit_l2(torch.tensor([[3.0, 4.0], [0.0, 1.0]]))
        tensor([5., 1.])
    """
    if w.dim() == 0:
        raise ConfigError("unit_l2 needs a weight with at least one dim, got a scalar")
    return w.detach().reshape(w.shape[0], -1).norm(p=2, dim=1)


def random_scores(
    w: torch.Tensor,
    generator: Optional[torch.Generator] = None,
    grad: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Uniform random scores, same shape as ``w`` (the random-pruning baseline).

    Args:
        w: a weight tensor (only its shape, dtype and device are used).
        generator: a ``torch.Generator``; ``None`` uses torch's global RNG, so
            ``torch.manual_seed`` makes the result reproducible.
        grad: ignored.

    Returns:
        A tensor of ``U[0, 1)`` values shaped like ``w`` (ties have probability ~0).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> random_scores(torch.zeros(3), g).shape
        torch.Size([3])
    """
    device = generator.device if generator is not None else w.device
    scores = torch.rand(w.shape, generator=generator, dtype=torch.float64, device=device)
    return scores.to(w.device)


def lamp(w: torch.Tensor, grad: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Layer-adaptive magnitude scores (LAMP, Lee et al. 2021), same shape as ``w``.

    A weight's score is its square over the sum of the squares of the tensor's weights at least as
    large, so every tensor's largest weight scores 1 and scores compare across layers: with
    ``scope="global"`` one ranking allocates the sparsity over the layers without any data.

    Example:
        >>> lamp(torch.tensor([1.0, -2.0, 2.0, 0.0]))
        tensor([0.1111, 0.5000, 1.0000, 0.0000], dtype=torch.float64)
    """
    squares = w.detach().to(torch.float64).reshape(-1).pow(2)
    order = torch.argsort(squares, stable=True)
    ranked = squares[order]
    at_least = ranked.flip(0).cumsum(0).flip(0)
    scores = torch.empty_like(squares)
    scores[order] = torch.where(at_least > 0, ranked / at_least.clamp_min(torch.finfo(torch.float64).tiny), 0.0)
    return scores.reshape(w.shape)


CRITERIA: Registry[Criterion] = Registry("pruning criterion")
"""Registered criteria by name; add one with ``CRITERIA.register("name", fn, description=...)``."""
CRITERIA.register("magnitude", magnitude, description="|w| per weight (Han et al. 2015)")
CRITERIA.register("unit_l2", unit_l2, description="L2 norm of each unit's weights (row / filter)")
CRITERIA.register("random", random_scores, description="uniform random scores (the control)")
CRITERIA.register("lamp", lamp, description="layer-adaptive magnitude (Lee et al. 2021): use scope=global to "
                                            "allocate a weight sparsity over the layers without data")


def get_criterion(name: str) -> Criterion:
    """Look up a criterion by name.

    Raises:
        UnknownNameError: if ``name`` is unknown; the message lists the valid names.

    Example:
        >>> get_criterion("magnitude") is magnitude
        True
    """
    return CRITERIA.get(name)
