"""Target solvers: each turns a target that is not a plain sparsity into a per-layer plan
``{layer or group: percent}`` that a :class:`~prunekit.prune.Pruner` then prunes to.

* :mod:`.sensitivity` -- prune each layer alone over a grid, record validation accuracy and what it removes;
* :mod:`.allocate` -- the plan reaching a parameter, MAC or latency target with the least predicted loss;
* :mod:`.latency` -- a plan whose compacted model *measures* at most a fraction of the dense latency;
* :mod:`.flops` -- the sparsity that cuts the MACs by a factor;
* :mod:`.reach` -- the sparsity a plan reaches (what a schedule scales it by);
* :mod:`.owl` -- OWL: language models' blocks pruned less where their weights carry activation outliers.

Every solver takes one :class:`~prunekit.prune.PruneSpec` and builds the model's
:func:`~prunekit.structure.model_structure` once (:mod:`.request`).

Example:
    >>> import torch
    >>> from torch import nn
    >>> from prunekit.prune import PruneSpec
    >>> model = nn.Sequential(nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 10))
    >>> round(sparsity_for_reduction(model, PruneSpec("unit"), 2.0, input_shape=(100,)), 1)
    52.5
"""

from .allocate import allocate
from .flops import mac_ratio, sparsity_for_reduction
from .latency import LatencyPlan, LatencyTarget, check_latency_spec, plan_for_latency
from .owl import owl_plan
from .reach import plan_reach
from .request import solver_spec, solver_structure
from .sensitivity import GRID, TARGET_KINDS, Sensitivity, aligned_grid, layer_sensitivity, prunable_names, training_tail

__all__ = ["GRID", "LatencyPlan", "LatencyTarget", "Sensitivity", "TARGET_KINDS", "aligned_grid", "allocate", "check_latency_spec",
           "layer_sensitivity", "mac_ratio", "owl_plan", "plan_for_latency", "plan_reach", "prunable_names", "solver_spec", "solver_structure",
           "sparsity_for_reduction", "training_tail"]
