"""``prune_model``: the torch-style face of pruning: one call, a :class:`~prunekit.prune.Pruner` inside.

``prune_model(model, method, sparsity, **options)`` is ``Pruner(model, PruneSpec(method, **options),
example_inputs).prune(sparsity, mask=mask, calibration=calibration)``: the request is checked by
:class:`~prunekit.prune.PruneSpec`, the methods are the :data:`~prunekit.prune.METHODS` registry.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from prunekit.prune.mask import Mask
from prunekit.prune.methods import METHODS, SCOPES, PruningMethod  # noqa: F401  (re-exported)
from prunekit.prune.pruner import Pruner
from prunekit.prune.scores import Criterion
from prunekit.prune.spec import PruneSpec


def prune_model(
    model: nn.Module,
    method: str = "weight",
    sparsity: Union[float, Mapping[str, float], None] = None,
    *,
    scope: str = "layer",
    layers: Optional[Sequence[str]] = None,
    criterion: Union[str, Criterion, None] = None,
    mask: Optional[Mapping[str, torch.Tensor]] = None,
    include_output: bool = False,
    example_inputs: Any = None,
    include_inexact: bool = False,
    calibration: Any = None,
    calibration_batches: int = 32,
    loss_fn: Optional[Callable] = None,
    pattern: Union[str, tuple[int, int], None] = None,
    reconstruct: bool = False,
) -> Mask:
    """Prune ``model`` in place to a total ``sparsity`` percent and return the mask.

    ``round(sparsity / 100 * n)`` entries are pruned, where ``n`` counts the weights of each
    pruned tensor (``scope="layer"``), or of all of them (``scope="global"``); for
    ``method="unit"`` it counts units (output neurons / conv filters) instead of weights.
    A unit's row/filter, bias entry and following BatchNorm weight/bias entries are masked
    together (see :mod:`prunekit.prune.layers`). The output layer (classifier) is left whole
    by default for both methods; its units are never removed.
    Scores are computed on the currently masked weights. With ``mask`` (a previous mask),
    entries already pruned stay pruned and count toward the target, so an iterative schedule
    calls ``prune_model`` with an increasing total target each round; a target below the
    current sparsity leaves the mask as it is.

    Args:
        model: the model; its parameters are zeroed in place (objects unchanged).
        method: ``"weight"`` or ``"unit"`` (see :data:`METHODS`).
        sparsity: percentage to prune, in ``[0, 100)``; e.g. ``92.5`` (default: 50, or the pattern's). Or a plan per layer,
            ``{fnmatch pattern: percent}`` on module names (on group names with ``example_inputs``):
            the first matching pattern gives a layer its sparsity, a layer no pattern matches is left
            whole; layer scope only.
        scope: ``"layer"`` or ``"global"`` (see :data:`SCOPES`).
        layers: ``fnmatch`` patterns on module names selecting the layers to prune.
        criterion: a name in :data:`~prunekit.prune.scores.CRITERIA` (``magnitude``, ``unit_l2``,
            ``random``, the unit criteria ``l1``, ``l2``, ``bn_scale``, ``fpgm``, ``taylor`` of
            :mod:`~prunekit.prune.unit_criteria` and ``learned`` of :mod:`~prunekit.prune.learned`) or a callable ``fn(weight, grad=None) -> scores``
            (per weight, or per unit for ``"unit"``; per-weight scores are reduced to their L2
            norm per unit). With ``example_inputs`` a unit criterion scores each coupled group as one.
        mask: the previous mask; the result only shrinks it.
        include_output: weight pruning: prune the output layer's weights too.
        example_inputs: unit pruning of any model: one batch it accepts (tensor, tuple or dict).
            The model is traced (:mod:`prunekit.structure`) and every coupled group (channels joined
            by residual adds, concatenations, depthwise convs, attention heads...) is ranked by the
            L2 norm of all the weights its units own; the model's outputs are never pruned.
            Without it, unit pruning walks the layers in order (``nn.Sequential`` models).
        include_inexact: with ``example_inputs``: also prune groups mixed by a normalisation (a
            transformer's residual width through LayerNorm); removing them is then not exact.
        calibration: data for criteria that need it (``taylor``, ``learned``, ``wanda``, ``sparsegpt``): any
            form :func:`~prunekit.train` takes; ``calibration_batches`` batches of it (128 samples each for
            tensors) are used, with ``loss_fn`` (default: the model's own loss, else cross-entropy).
        pattern: weight pruning: an N:M pattern such as ``"2:4"`` (keep N of every M consecutive weights
            of a row, :mod:`~prunekit.prune.nm`) instead of a free sparsity; layers whose rows do not
            split into groups of M are left whole (with a warning).
        reconstruct: weight pruning: after the mask is chosen (by any criterion), re-solve each pruned layer's
            remaining weights, in call order, so its outputs on the ``calibration`` data match the unpruned
            layer's (exact damped least squares, :mod:`~prunekit.prune.reconstruct`). No training.

    Returns:
        The new :class:`Mask` (already applied to ``model``).

    Raises:
        ConfigError: for an invalid sparsity, method, scope, criterion or layer pattern, or NaN or
            infinite scores (naming the layers).
        CheckpointError: if ``mask`` does not fit ``model``.

    Example:
        >>> model = nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 10))
        >>> mask = prune_model(model, "weight", 90.0)
        >>> round(mask.sparsity(), 1)
        90.0
        >>> mask = prune_model(model, "weight", 95.0, scope="global", mask=mask)
    """
    spec = PruneSpec(method, scope, layers, include_output, criterion, calibration_batches,
                     pattern=pattern, reconstruct=reconstruct, include_inexact=include_inexact)
    pruner = Pruner(model, spec, example_inputs, loss_fn=loss_fn)
    return pruner.prune(sparsity, mask=mask, calibration=calibration)

