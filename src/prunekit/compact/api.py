"""``compact(model, mask)``: physically remove pruned units, from any model (traced) or an ``nn.Sequential``."""

from __future__ import annotations

from typing import Any, Mapping, Optional

import torch
from torch import nn

from ..errors import ConfigError
from ..structure import ModelStructure, model_structure

from .graph import compact_graph
from .result import CompactResult
from .sequential import compact_sequential


def compact(model: nn.Module, mask: Optional[Mapping[str, torch.Tensor]] = None, *,
            example_inputs: Any = None, include_inexact: bool = False,
            structure: Optional[ModelStructure] = None) -> CompactResult:
    """Physically remove the pruned units of ``model``.

    With ``example_inputs`` any model is traced (:mod:`prunekit.structure`) and every coupled group
    loses the units whose parameter entries are all zero, in every tensor they own (see
    :mod:`prunekit.compact.graph`); the result has the same class, smaller layers, updated size
    attributes, and a replayable plan, and is checked to reproduce the masked model's outputs.
    Without it, ``model`` must be an ``nn.Sequential`` (see the module docstring for the rules).

    Args:
        model: the model (not modified).
        mask: optional pruning mask, applied to a copy first (names as in ``model.state_dict()``).
        example_inputs: one batch the model accepts (tensor, tuple of arguments or dict of kwargs).
        include_inexact: also remove units of groups mixed by a normalisation (not exact).
        structure: instead of ``example_inputs``, the model's :func:`~prunekit.structure.model_structure`
            (e.g. ``pruner.structure``): its trace is reused, so pruning then compacting traces once.

    Returns:
        A :class:`CompactResult`; ``result.model(x)`` equals the masked ``model(x)`` in eval mode.

    Raises:
        ConfigError: for a model that is not an ``nn.Sequential`` without ``example_inputs``, a
            ``structure`` of another architecture, or a compacted model that does not reproduce the
            masked one.
        TraceError: if the model cannot be traced with ``example_inputs``.

    Example:
        >>> from prunekit.prune import prune_model
        >>> model = nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 10))
        >>> mask = prune_model(model, "unit", 75.0)
        >>> result = compact(model, mask)
        >>> result.model[0].weight.shape
        torch.Size([75, 784])
        >>> print(result.report.format_table())
        layer  type    units  kept  removed  constant  status     note
        0      Linear  300    75    225      0         compacted
        2      Linear  10     10    0        0         output     model outputs: never removed
        parameters: 238,510 -> 59,635 (4.00x fewer)
    """
    if structure is not None and example_inputs is not None:
        raise ConfigError("pass example_inputs or a structure built on them, not both")
    if structure is None:
        structure = model_structure(model, example_inputs)
    else:
        structure.check(model)
    if structure.traced:
        return compact_graph(model, mask, structure, include_inexact=include_inexact)
    return compact_sequential(model, mask)
