"""Pruning: importance scores, selection, masks, and the ``prune_model`` entry point.

Pieces (each replaceable on its own):

* :mod:`~prunekit.prune.scores` -- criteria ``weight -> importance`` (``CRITERIA`` registry);
* :mod:`~prunekit.prune.unit_criteria` -- criteria of whole units: l1, l2, bn_scale, fpgm, taylor
  (:mod:`~prunekit.prune.units` gathers the slices each unit owns); :mod:`~prunekit.prune.learned`
  adds ``learned`` (REINFORCE agents, Huang et al. 2018);
* :mod:`~prunekit.prune.posttrain` -- ``wanda`` and ``sparsegpt``, layer by layer from calibration data
  (:mod:`~prunekit.prune.calibration`), and ``reconstruct=True`` (:mod:`~prunekit.prune.reconstruct`);
* :mod:`~prunekit.prune.nm` -- N:M patterns (``pattern="2:4"``) for every weight criterion;
* :mod:`~prunekit.prune.select` -- ``scores + sparsity (+ previous mask) -> keep mask``;
* :mod:`~prunekit.prune.layers` -- which layers are pruned and what a unit consists of;
* :mod:`~prunekit.prune.mask` -- :class:`Mask`: apply, hold through training, save/load;
* :mod:`~prunekit.prune.spec` -- :class:`PruneSpec`, the request: what to prune and how, checked once;
* :mod:`~prunekit.prune.pruner` -- :class:`Pruner`: prunes a model as a spec says, its structure built once;
* :mod:`~prunekit.prune.methods` -- the ``METHODS`` registry (``weight``, ``unit``, yours);
* :mod:`~prunekit.prune.api` -- :func:`prune_model`, the torch-style one-call face;
* :mod:`~prunekit.prune.report` -- :func:`sparsity_report` (per-layer counts and FLOPs);
* :mod:`~prunekit.prune.interop` -- :func:`from_torch_prune`, :func:`to_torch_prune`.

Example:
    >>> from torch import nn
    >>> from prunekit.prune import prune_model, sparsity_report
    >>> model = nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 10))
    >>> mask = prune_model(model, "unit", 50.0)
    >>> sparsity_report(model, mask, input_shape=(1, 784)).rows[0].live_units
    150
"""

from prunekit.prune.api import prune_model
from prunekit.prune.methods import METHODS, SCOPES, PruningMethod, removes_units
from prunekit.prune.pruner import Pruner
from prunekit.prune.spec import PruneSpec
from prunekit.prune.learned import LearnedConfig, learned_criterion
from prunekit.prune.interop import from_torch_prune, to_torch_prune
from prunekit.prune.mask import Mask, MaskHold, as_mask
from prunekit.prune.nm import nm_keep_mask, nm_violations, parse_pattern
from prunekit.prune.posttrain import PostTrainingCriterion
from prunekit.prune.report import LayerStats, SparsityReport, sparsity_report
from prunekit.prune.scores import CRITERIA, get_criterion, lamp, magnitude, random_scores, unit_l2
from prunekit.prune.select import check_sparsity, global_keep_masks, keep_mask
from prunekit.prune.unit_criteria import UNIT_CRITERIA, UnitCriterion
from prunekit.prune.layers import classifier_name, prunable_layers, select_layers, unit_groups

__all__ = [
    "CRITERIA", "LayerStats", "LearnedConfig", "METHODS", "Mask", "MaskHold", "PostTrainingCriterion", "PruneSpec",
    "Pruner", "PruningMethod", "SCOPES", "SparsityReport", "UNIT_CRITERIA", "UnitCriterion", "as_mask",
    "check_sparsity", "classifier_name", "from_torch_prune", "get_criterion", "global_keep_masks", "keep_mask", "lamp",
    "learned_criterion", "magnitude", "nm_keep_mask", "nm_violations", "parse_pattern", "prunable_layers",
    "prune_model", "random_scores", "removes_units", "select_layers", "sparsity_report", "to_torch_prune", "unit_groups", "unit_l2",
]
