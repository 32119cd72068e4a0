"""The sparsity a per-layer plan reaches over the pruned layers, recorded as a plan's target so that a
schedule's levels scale it (level ``k`` prunes each layer to ``k / reach`` of its share).

Example:
    >>> from torch import nn
    >>> from prunekit.prune import PruneSpec
    >>> from prunekit.structure import model_structure
    >>> model = nn.Sequential(nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 30), nn.ReLU(), nn.Linear(30, 2))
    >>> plan_reach(model, PruneSpec("weight"), {"0": 90.0, "2": 50.0}, model_structure(model))
    60.0
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Mapping, Optional

import torch
from torch import nn

from ..prune import Pruner, PruneSpec
from ..prune.report import describe_pruned
from ..structure import ModelStructure


def plan_reach(model: nn.Module, spec: PruneSpec, plan: Mapping[str, float], structure: ModelStructure,
               mask: Optional[Mapping[str, torch.Tensor]] = None) -> float:
    """Prune a copy of ``model`` to ``plan`` as ``spec`` prunes (over ``mask``, if the model is pruned
    already) and return the sparsity it reaches over the pruned layers, in percent."""
    work = copy.deepcopy(model)
    pruned = Pruner(work, replace(spec, plan=None, plan_sparsity=None), structure=structure).prune(dict(plan), mask=mask)
    return round(describe_pruned(work, pruned, spec.method)["sparsity_actual"], 4)
