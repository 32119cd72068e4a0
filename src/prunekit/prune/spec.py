"""``PruneSpec``: one pruning request (what to prune and how), checked once, passed down unchanged.

Every rule that ties two fields together lives here and nowhere else, so a violation reads the same
from the API, a schedule, a sweep and the command line. The target of one pruning call (a sparsity,
a per-layer plan, or the spec's N:M pattern) is given to :meth:`~prunekit.prune.Pruner.prune`;
:meth:`PruneSpec.target` turns a schedule's level into it.

Example:
    >>> spec = PruneSpec("unit", criterion="l1", layers=("fc*",))
    >>> spec.removes_units, spec.needs_data
    (True, False)
    >>> PruneSpec("unit", pattern="2:4")
    Traceback (most recent call last):
    ...
    prunekit.errors.ConfigError: an N:M pattern prunes individual weights: use method='weight' (...), not 'unit'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Union

from prunekit.errors import ConfigError
from prunekit.prune.methods import METHODS, SCOPES, PruningMethod
from prunekit.prune.nm import parse_pattern, pattern_sparsity
from prunekit.prune.posttrain import PostTrainingCriterion
from prunekit.prune.scores import CRITERIA
from prunekit.prune.select import check_layer_sparsities
from prunekit.prune.unit_criteria import needs_data

Target = Union[float, Mapping[str, float], None]
"""What one pruning call reaches: a percentage, a per-layer plan ``{layer pattern: percent}``, or None
(the spec's own: its pattern's sparsity, its plan, else 50%)."""

PLAN_NEEDS_LAYER_SCOPE = "a per-layer sparsity plan sets each layer's sparsity itself: use scope='layer'"


@dataclass(frozen=True)
class PruneSpec:
    """What to prune and how (the same request for :func:`~prunekit.prune.prune_model`, schedules, sweeps
    and the CLI).

    Args:
        method: a name in :data:`~prunekit.prune.METHODS` (``weight``, ``unit``, or your own).
        scope: ``layer`` or ``global`` (see :data:`~prunekit.prune.SCOPES`).
        layers: ``fnmatch`` patterns of the layers (or traced groups) to prune; default all but the output.
        include_output: weight pruning: prune the output layer too.
        criterion: a name in :data:`~prunekit.prune.CRITERIA`, or a callable ``fn(weight, grad=None)``
            (default: the method's).
        calibration_batches: batches a data-driven criterion (``taylor``, ``wanda``...) or ``reconstruct`` reads.
        plan: a per-layer plan ``((layer pattern, percent), ...)`` that reaches ``plan_sparsity`` over the
            pruned layers; a schedule's level ``k`` prunes every layer to ``k / plan_sparsity`` of its share.
        plan_sparsity: see ``plan``.
        pattern: an N:M pattern such as ``"2:4"`` (or ``(2, 4)``) instead of a free sparsity (weight methods only).
        reconstruct: re-solve each pruned layer's remaining weights on calibration data (weight methods only).
        include_inexact: unit pruning of a traced model: also prune groups mixed by a normalisation.
        round_to: unit pruning, layer scope: every pruned layer (or traced group) keeps a multiple of this
            many units, rounded up from its target (a layer of at most that many units stays whole);
            vector units and GPU kernels run fastest on channel counts such as 8 or 16; 1: no rounding.
        sequential: post-training criteria and ``reconstruct``: each layer is calibrated on inputs from the
            layers before it as already pruned, all batches in one lock-step pass (True); or every layer of a
            block (a transformer's decoder layer; the model, without repeated blocks) from one pass of the
            unpruned block before any of them is pruned (False: the Wanda and SparseGPT reference default,
            two passes).

    Raises:
        ConfigError: for an unknown name, or fields that do not go together (the message says which).
    """

    method: str = "weight"
    scope: str = "layer"
    layers: tuple[str, ...] | None = None
    include_output: bool = False
    criterion: Union[str, Callable[..., Any], None] = None
    calibration_batches: int = 32
    plan: tuple[tuple[str, float], ...] | None = None
    plan_sparsity: float | None = None
    pattern: Union[str, tuple[int, int], None] = None  # normalised to "N:M"
    reconstruct: bool = False
    include_inexact: bool = False
    round_to: int = 1
    sequential: bool = True

    def __post_init__(self) -> None:
        pruning = METHODS.get(self.method)
        if not isinstance(self.scope, str) or self.scope not in SCOPES:
            raise ConfigError(f"unknown pruning scope {self.scope!r}; valid: {', '.join(SCOPES)}")
        if isinstance(self.criterion, str):
            CRITERIA.get(self.criterion)
        elif self.criterion is not None and not callable(self.criterion):
            raise ConfigError(f"criterion must be a name or a callable, got {self.criterion!r}")
        if isinstance(self.calibration_batches, bool) or not isinstance(self.calibration_batches, int) \
                or self.calibration_batches < 1:
            raise ConfigError(f"calibration_batches must be a positive integer, got {self.calibration_batches!r}")
        if self.layers is not None:
            object.__setattr__(self, "layers", (self.layers,) if isinstance(self.layers, str) else tuple(self.layers))
        if self.plan is not None:
            plan = check_layer_sparsities(dict(self.plan))
            object.__setattr__(self, "plan", tuple(plan.items()))
            if self.plan_sparsity is None:
                raise ConfigError("a per-layer plan needs plan_sparsity: the sparsity it reaches over the pruned layers")
        if self.pattern is not None:
            n, m = parse_pattern(self.pattern)
            object.__setattr__(self, "pattern", f"{n}:{m}")
            if self.plan is not None:
                raise ConfigError("an N:M pattern sets every layer's sparsity itself: give a pattern or a plan, not both")
        self._check_together(pruning)

    def _check_together(self, pruning: PruningMethod) -> None:
        if self.plan is not None and self.scope != "layer":
            raise ConfigError(PLAN_NEEDS_LAYER_SCOPE)
        layerwise = [what for what, used in (
            ("an N:M pattern", self.pattern is not None),
            (f"criterion {self.criterion!r}", isinstance(self.resolved_criterion(), PostTrainingCriterion))) if used]
        for what in layerwise:
            if pruning.removes_units:
                raise ConfigError(f"{what} prunes individual weights: use method='weight' (or another method that "
                                  f"does not remove units), not {self.method!r}")
            if self.scope != "layer":
                raise ConfigError(f"{what} prunes each layer on its own: use scope='layer'")
        if not self.sequential and not (self.reconstruct or isinstance(self.resolved_criterion(), PostTrainingCriterion)):
            raise ConfigError("sequential=False changes how calibration data reach the layers: use it with a "
                              "post-training criterion (wanda, sparsegpt) or reconstruct=True")
        if self.reconstruct and pruning.removes_units:
            raise ConfigError("reconstruct=True re-solves the weights a weight mask keeps: use method='weight'")
        if self.criterion == "unit_l2" and not pruning.removes_units:
            raise ConfigError("criterion 'unit_l2' scores whole units; use it with method='unit'")
        if isinstance(self.round_to, bool) or not isinstance(self.round_to, int) or self.round_to < 1:
            raise ConfigError(f"round_to is a number of units >= 1 (e.g. 8), got {self.round_to!r}")
        if self.round_to > 1 and (not pruning.removes_units or self.scope != "layer"):
            raise ConfigError("round_to rounds the units each layer keeps: use a method that removes units "
                              "(method='unit') with scope='layer'")
        if self.include_output and pruning.removes_units:
            raise ConfigError("unit pruning never removes the output layer's units (they are the model's outputs); "
                              "include_output applies to weight pruning only")
        if self.include_inexact and not pruning.removes_units:
            raise ConfigError("include_inexact adds groups of units a normalisation mixes: use method='unit'")

    def resolved_criterion(self) -> Any:
        """The criterion object: the named one, the given callable, or the method's default."""
        if self.criterion is None:
            return CRITERIA.get(METHODS.get(self.method).default_criterion)
        return CRITERIA.get(self.criterion) if isinstance(self.criterion, str) else self.criterion

    @property
    def removes_units(self) -> bool:
        """Whether the method removes whole units (see :class:`~prunekit.prune.PruningMethod`)."""
        return METHODS.get(self.method).removes_units

    @property
    def needs_data(self) -> bool:
        """Whether pruning reads training data (``taylor``, ``wanda``, ``sparsegpt``, or ``reconstruct``)."""
        return (isinstance(self.criterion, str) and needs_data(self.criterion)) or self.reconstruct

    def check_target(self, target: Target) -> float | dict[str, float]:
        """The checked target of one pruning call: a percentage or a ``{layer pattern: percent}`` plan.

        ``None`` means the spec's own (its pattern's sparsity, its plan, else 50%); a percentage with a spec
        that has a plan is a level of it (see :meth:`target`). With a pattern, the target must be the
        pattern's sparsity (or 0: nothing pruned).

        Raises:
            ConfigError: for an impossible percentage, a plan with ``scope='global'``, or a pattern with
                another sparsity.

        Example:
            >>> PruneSpec(pattern="2:4").check_target(None), PruneSpec().check_target({"fc*": 90})
            (50.0, {'fc*': 90.0})
        """
        if self.pattern is not None:
            implied = pattern_sparsity(*parse_pattern(self.pattern))
            if target is None or (isinstance(target, (int, float)) and not isinstance(target, bool)
                                  and (target == 0 or abs(float(target) - implied) <= 1e-9)):
                return implied if target is None else float(target)
            raise ConfigError(f"an N:M pattern {self.pattern} sets the sparsity itself ({implied:g}%, in one step); "
                              f"got a target of {target!r} as well: leave it out (a schedule uses a pattern with "
                              f"oneshot or finetune)")
        if target is None:
            return dict(self.plan) if self.plan is not None else 50.0
        if self.plan is not None and isinstance(target, (int, float)) and not isinstance(target, bool):
            target = self.target(float(target))  # a level of the plan: every layer its share
        checked = check_layer_sparsities(target)
        if isinstance(checked, dict) and self.scope != "layer":
            raise ConfigError(PLAN_NEEDS_LAYER_SCOPE)
        return checked

    def target(self, sparsity: float) -> float | dict[str, float]:
        """What a schedule's level ``sparsity`` prunes to: the number, or the plan scaled by
        ``sparsity / plan_sparsity``.

        Example:
            >>> PruneSpec(plan=(("fc1", 90.0), ("fc2", 50.0)), plan_sparsity=80.0).target(40.0)
            {'fc1': 45.0, 'fc2': 25.0}
        """
        if self.plan is None:
            return sparsity
        scale = sparsity / self.plan_sparsity if self.plan_sparsity else 0.0
        return {pattern: min(k * scale, 99.99) for pattern, k in self.plan}
