"""``Pruner``: prunes one model as a :class:`~prunekit.prune.PruneSpec` says, its structure built once.

A pruner holds the spec and the model's :func:`~prunekit.structure.model_structure`: the traced coupled
groups when ``example_inputs`` are given (traced on first use by a method that removes units, then kept),
else the layers walked in order. Every call of :meth:`Pruner.prune` (an iterative schedule's rounds, a
sensitivity grid) reuses it, and so does ``compact(model, structure=pruner.structure)``.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from prunekit.prune import PruneSpec
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> pruner = Pruner(model, PruneSpec("unit"), example_inputs=torch.randn(2, 4))
    >>> mask = pruner.prune(25.0)
    >>> mask = pruner.prune(50.0, mask=mask)  # the same structure: no second trace
    >>> [int(mask[f"{i}.weight"].any(1).sum()) for i in (0, 2)]
    [4, 4]
    >>> pruner.structure.traces
    1
"""

from __future__ import annotations

import glob
from dataclasses import replace
from typing import Any, Callable, Mapping, Optional

import torch
from torch import nn

from prunekit.errors import ConfigError
from prunekit.prune.mask import Mask, as_mask
from prunekit.prune.methods import METHODS, weight_masks
from prunekit.prune.nm import layers_fitting, parse_pattern
from prunekit.prune.posttrain import SPARSEGPT, PostTrainingCriterion, posttrain_masks, reconstruct_masked
from prunekit.prune.spec import PruneSpec, Target
from prunekit.prune.select import sparsity_of
from prunekit.prune.structured import group_unit_masks, prunable_groups
from prunekit.prune.layers import select_layers
from prunekit.prune.unit_criteria import CriterionRun, UnitCriterion
from prunekit.structure import ModelStructure, model_structure

DEFAULT_UNIT_CRITERIA = (None, "unit_l2", "magnitude")
"""Criteria that rank a traced group by the L2 norm of all the weights its units own."""


class Pruner:
    """Prunes ``model`` in place as ``spec`` says (see :func:`~prunekit.prune.prune_model` for the rules).

    Args:
        model: the model; its parameters are zeroed in place by :meth:`prune`.
        spec: the request (default: weight magnitude, layer-wise).
        example_inputs: one batch the model accepts; with a method that removes units, the model is
            traced on it (once) and every coupled group is pruned as one. Without it, such a method walks
            the layers in order (``nn.Sequential`` models).
        structure: instead of ``example_inputs``, a :func:`~prunekit.structure.model_structure` already
            built for this architecture (its trace, if any, is reused).
        loss_fn: the loss a data-driven criterion uses (default: the model's own, else cross-entropy).
    """

    def __init__(self, model: nn.Module, spec: Optional[PruneSpec] = None, example_inputs: Any = None, *,
                 structure: Optional[ModelStructure] = None, loss_fn: Optional[Callable] = None):
        if structure is not None and example_inputs is not None:
            raise ConfigError("pass example_inputs or a structure built on them, not both")
        _refuse_torch_pruned(model)
        if structure is not None:
            structure.check(model)
        self.model, self.spec, self.loss_fn = model, spec if spec is not None else PruneSpec(), loss_fn
        self.structure: ModelStructure = structure if structure is not None else model_structure(model, example_inputs)

    @property
    def traced(self) -> bool:
        """Whether units are pruned by the traced coupled groups (a unit method on a traced structure)."""
        return self.spec.removes_units and self.structure.traced

    def prune(self, target: Target = None, *, mask: Optional[Mapping[str, torch.Tensor]] = None,
              calibration: Any = None) -> Mask:
        """Prune to ``target`` (a percentage, a ``{layer pattern: percent}`` plan, or None: the spec's own)
        and return the new mask, already applied; ``mask`` (a previous one) only shrinks.

        ``calibration``: data for a criterion that needs it (``taylor``, ``learned``, ``wanda``,
        ``sparsegpt``) and for ``reconstruct``.

        Raises:
            ConfigError: for an impossible target, or NaN or infinite scores (naming the layers).
            CheckpointError: if ``mask`` does not fit the model.
        """
        spec, model = self.spec, self.model
        sparsity = spec.check_target(target)
        if spec.round_to > 1 and sparsity != 0:
            sparsity = self.rounded(sparsity)
        fn = spec.resolved_criterion()
        if isinstance(fn, PostTrainingCriterion) and not spec.sequential:
            fn = replace(fn, sequential=False)
        if isinstance(fn, UnitCriterion):
            fn = CriterionRun(fn, calibration, spec.calibration_batches, self.loss_fn, sparsity)
        previous = as_mask(mask)
        if previous is not None:
            previous.validate(model)
            previous.apply_(model)
        nm = parse_pattern(spec.pattern) if sparsity != 0 else None  # a pattern's level 0 prunes nothing
        reconstruct, targets = spec.reconstruct, None
        if self.traced:
            score = None if spec.criterion in DEFAULT_UNIT_CRITERIA else fn
            new = group_unit_masks(model, self.structure.graph, sparsity, spec.scope, score, previous or Mask({}),
                                   spec.layers, spec.include_inexact)
        else:
            targets = select_layers(model, spec.method, spec.layers, include_output=spec.include_output)
            if nm is not None or isinstance(fn, PostTrainingCriterion):
                targets = layers_fitting(targets, nm)
            if isinstance(fn, PostTrainingCriterion):
                new = posttrain_masks(model, targets, sparsity, fn, calibration, spec.calibration_batches,
                                      previous or {}, nm, reconstruct)
                reconstruct = False  # done layer by layer with the masks
            elif nm is not None:
                new = weight_masks(model, targets, sparsity, spec.scope, fn, previous or {}, nm)
            else:
                new = METHODS.get(spec.method).build(model, targets, sparsity, spec.scope, fn, previous or {})
        result = Mask(new) & previous if previous is not None else Mask(new)
        if reconstruct:
            reconstruct_masked(model, targets, result, calibration, spec.calibration_batches,
                               replace(SPARSEGPT, sequential=spec.sequential))
        result.apply_(model)
        return result


    def rounded(self, sparsity: float | dict[str, float]) -> dict[str, float]:
        """The per-layer plan in which every pruned layer (or traced group) keeps a multiple of
        ``spec.round_to`` units, rounded up from what ``sparsity`` would keep."""
        spec = self.spec
        if self.traced:  # attention heads are whole units already: their counts are not rounded
            groups = prunable_groups(self.structure.graph, spec.layers, spec.include_inexact)
            units = [(g.name, g.size, g.kind != "heads") for g in groups]
        else:
            units = [(name, m.weight.shape[0], True) for name, m in
                     select_layers(self.model, spec.method, spec.layers, include_output=spec.include_output)]
        rounded = [n for _, n, rounds in units if rounds]
        if rounded and spec.round_to > max(rounded):
            raise ConfigError(f"round_to {spec.round_to} is larger than every pruned layer (the widest has "
                              f"{max(rounded)} units): give at most {max(rounded)}")
        plan = {}
        for name, n, rounds in units:
            kept = n - round(sparsity_of(sparsity, name) / 100 * n)
            if rounds:
                kept = min(n, -(-kept // spec.round_to) * spec.round_to)
            plan[glob.escape(name)] = 100.0 * (n - kept) / n
        return plan


def _refuse_torch_pruned(model: nn.Module) -> None:
    names = [n for n, _ in model.named_parameters() if n.endswith("_orig")]
    buffers = {n for n, _ in model.named_buffers()}
    pruned = [n.removesuffix("_orig") for n in names if n.removesuffix("_orig") + "_mask" in buffers]
    if pruned:
        raise ConfigError(f"the model is pruned with torch.nn.utils.prune ({', '.join(pruned[:3])}"
                          f"{', ...' if len(pruned) > 3 else ''}); convert it first: "
                          f"model, mask = prunekit.from_torch_prune(model), then prune_model(model, ..., mask=mask)")
