"""What a sweep covers: :class:`SweepConfig` (a frozen dataclass) and the reference sparsities.

Example:
    >>> config = SweepConfig(methods=("weight",), sparsities=(90, 50, 50.0))
    >>> config.sparsities, config.resolved_model, config.resolved_dataset
    ((50.0, 90.0), 'mlp', 'mnist')
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..checkpoint.user_code import checkpoint_dataset_name, checkpoint_model_name, recorded_dataset
from ..errors import ConfigError
from ..prune import METHODS, SCOPES, PruneSpec, check_sparsity
from ..prune.nm import parse_pattern, pattern_sparsity
from ..prune.select import check_layer_sparsities
from ..quantize import check_bits
from ..schedules import Recovery
from ..storage import fingerprint
from ..training import TrainConfig
from .series_names import resolve_series

ONE_STEP_SCHEDULES = ("oneshot", "finetune")
"""The schedules that prune in one step (the ones an N:M pattern can use)."""
REFERENCE_SPARSITIES = (0.0, 25.0, 50.0, 60.0, 70.0, 75.0, 80.0, 85.0, 90.0, 92.5, 95.0, 97.5, 99.0)
"""The reference study's sparsities, in percent."""


@dataclass(frozen=True)
class SweepConfig:
    """What a sweep covers.

    Args:
        model: registered model name of the baseline (``None``: the checkpoint's model, or ``mlp``).
        model_args: its builder arguments.
        dataset: a registered dataset (``None``: the checkpoint's dataset, or ``mnist``).
        methods: pruning methods (``"weight"``, ``"unit"``).
        sparsities: percentages in ``[0, 100)``.
        scope: ``"layer"`` or ``"global"`` for every method, or one per method as
            ``"weight=global,unit=layer"`` (see :meth:`scope_for`).
        train: the baseline's training recipe.
        schedules: pruning schedules (see :data:`prunekit.schedules.SCHEDULES`); a name may end in
            ``+distill`` to distil in that series only (e.g. ``iterative,iterative+distill``).
        recovery: how the schedules recover accuracy (:class:`~prunekit.schedules.Recovery`).
        layers: ``fnmatch`` patterns of the layers to prune (default: all prunable ones but the output layer).
        include_output: weight pruning prunes the output layer too (left whole by default).
        calibration_batches: batches of 128 training samples a data-driven criterion (``taylor``, ``wanda``,
            ``sparsegpt``) or ``reconstruct`` reads per pruning step.
        reconstruct: weight pruning: re-solve each layer's remaining weights on the calibration batches.
        flop_reductions: levels as MAC reduction factors (e.g. ``(1.5, 2, 3)``) instead of sparsities:
            the sweep finds each one's sparsity on the baseline (:mod:`.flop_targets`); one method only.
        seeds: replicates: one baseline trained per seed (``train.seed`` replaced) and every point run on
            each, its recovery seeded with it too; tables then give mean, standard deviation and n.
            Empty: one baseline, trained with ``train.seed``.
        pattern: an N:M pattern such as ``"2:4"`` instead of free sparsities (weight methods; its one level
            is the pattern's sparsity, so the schedules that prune once: oneshot, finetune).
        plan: a per-layer plan ``((layer pattern, percent), ...)``: every level ``k`` prunes each layer to
            ``k / plan_sparsity`` of its share (``prunekit sensitivity --target`` writes one).
        plan_sparsity: the sparsity the plan reaches over the pruned layers (found on the baseline by
            :func:`~.sweep.run_sweep` when not given).
        include_inexact: unit pruning of traced models: also prune groups mixed by a normalisation.
        spec_options: any other :class:`~prunekit.prune.PruneSpec` fields, ``((field, value), ...)``, given to
            every method's spec as they are (a new spec field reaches sweeps without a field here).
        compress_bits: also compress every point (Deep Compression without fine-tuning: k-means weight sharing
            of each pruned layer's non-zero weights with ``2^bits`` centroids, entropy-coded): the point records
            the compressed file's bytes and ratio and the shared model's test accuracy.
    """

    model: str | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    dataset: str | None = None
    methods: tuple[str, ...] = ("weight", "unit")
    sparsities: tuple[float, ...] = REFERENCE_SPARSITIES
    scope: str = "layer"
    train: TrainConfig = TrainConfig()
    schedules: tuple[str, ...] = ("oneshot",)
    recovery: Recovery = field(default_factory=Recovery)
    layers: tuple[str, ...] | None = None
    include_output: bool = False
    calibration_batches: int = 32
    reconstruct: bool = False
    flop_reductions: tuple[float, ...] = ()
    seeds: tuple[int, ...] = ()
    pattern: str | None = None
    plan: tuple[tuple[str, float], ...] | None = None
    plan_sparsity: float | None = None
    include_inexact: bool = False
    spec_options: tuple[tuple[str, Any], ...] = ()
    compress_bits: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.spec_options, dict):
            object.__setattr__(self, "spec_options", tuple(self.spec_options.items()))
        if not self.schedules:
            raise ConfigError("a sweep needs at least one schedule")
        for name in self.schedules:
            resolve_series(name, self.recovery)
        object.__setattr__(self, "schedules", tuple(dict.fromkeys(self.schedules)))
        if self.plan is not None:
            object.__setattr__(self, "plan", tuple(check_layer_sparsities(dict(self.plan)).items()))
            if len(self.methods) != 1:
                raise ConfigError(f"a per-layer plan reaches a sparsity of its own for each method; sweep it with one "
                                  f"method (--methods weight or unit), got {', '.join(self.methods)}")
        if self.compress_bits is not None:
            check_bits(self.compress_bits)
        if self.pattern is not None:
            self._levels_of_pattern()
        for method in self.methods:
            spec = self.prune_spec(method)  # the request's rules, checked by PruneSpec, for every method
            if self.plan is not None:
                spec.check_target(dict(self.plan))
        if not self.methods or not self.sparsities:
            raise ConfigError("a sweep needs at least one method and one sparsity")
        object.__setattr__(self, "sparsities", tuple(sorted({check_sparsity(k) for k in self.sparsities})))
        bad_seeds = [s for s in self.seeds if isinstance(s, bool) or not isinstance(s, int) or s < 0]
        if bad_seeds:
            raise ConfigError(f"seeds must be non-negative integers, got {bad_seeds[0]!r}")
        object.__setattr__(self, "seeds", tuple(dict.fromkeys(self.seeds)))
        if self.flop_reductions:
            bad = [r for r in self.flop_reductions if not (isinstance(r, (int, float)) and r > 1)]
            if bad:
                raise ConfigError(f"FLOP reductions must be factors above 1 (2: half the MACs), got {bad[0]!r}")
            if len(self.methods) != 1:
                raise ConfigError(f"FLOP reductions are resolved for one pruning method; got methods "
                                  f"{', '.join(self.methods)} (give --methods unit or weight)")
            object.__setattr__(self, "flop_reductions", tuple(sorted({float(r) for r in self.flop_reductions})))

    def _levels_of_pattern(self) -> None:
        multi = [s for s in self.schedules if resolve_series(s, self.recovery)[0].name not in ONE_STEP_SCHEDULES]
        if multi:
            raise ConfigError(f"an N:M pattern prunes in one step: sweep it with {' or '.join(ONE_STEP_SCHEDULES)}, "
                              f"not {', '.join(multi)}")
        n, m = parse_pattern(self.pattern)
        object.__setattr__(self, "pattern", f"{n}:{m}")
        implied = pattern_sparsity(n, m)
        if tuple(self.sparsities) == REFERENCE_SPARSITIES:  # not given: the pattern's one level
            object.__setattr__(self, "sparsities", (implied,))
        elif set(map(float, self.sparsities)) - {0.0, implied}:
            raise ConfigError(f"an N:M pattern {self.pattern} prunes to {implied:g}%: its sweep's levels are 0 and "
                              f"{implied:g} (leave --sparsities out), got {list(self.sparsities)}")

    def prune_spec(self, method: str) -> PruneSpec:
        """The :class:`~prunekit.prune.PruneSpec` of ``method``'s series (the default criterion; a series
        name's ``@criterion`` replaces it).

        Example:
            >>> SweepConfig(methods=("weight",), pattern="2:4").prune_spec("weight").pattern
            '2:4'
        """
        plan = self.plan if self.plan is not None and self.plan_sparsity is not None else None
        return PruneSpec(method, self.scope_for(method), self.layers, self.include_output, None,
                         self.calibration_batches, plan=plan, plan_sparsity=self.plan_sparsity if plan else None,
                         pattern=self.pattern, reconstruct=self.reconstruct,
                         include_inexact=self.include_inexact and METHODS.get(method).removes_units,
                         **dict(self.spec_options))

    def scope_for(self, method: str) -> str:
        """The scope ``method`` is pruned with.

        Example:
            >>> SweepConfig(scope="weight=global,unit=layer").scope_for("weight")
            'global'
        """
        return parse_scope(self.scope, method)

    @property
    def resolved_model(self) -> str:
        """The model trained when no checkpoint is given."""
        return self.model or "mlp"

    @property
    def resolved_dataset(self) -> str:
        """The dataset used when no checkpoint is given."""
        return self.dataset or "mnist"

    @property
    def replicates(self) -> tuple[int | None, ...]:
        """The seeds of the sweep's replicates; ``(None,)`` for a sweep with one baseline.

        Example:
            >>> SweepConfig(seeds=(2, 0, 2)).replicates, SweepConfig().replicates
            ((2, 0), (None,))
        """
        return self.seeds or (None,)

    def for_seed(self, seed: int | None) -> SweepConfig:
        """The config of one replicate: baseline training and recovery seeded with ``seed`` (``None``: this)."""
        if seed is None:
            return self
        return replace(self, train=replace(self.train, seed=seed), recovery=self.recovery.with_seed(seed))

    def baseline_fingerprint(self) -> str:
        """A short hash of everything that determines the baseline's weights."""
        return fingerprint({"model": self.resolved_model, "model_args": self.model_args,
                            "dataset": self.resolved_dataset, "train": self.train.to_dict()})

    def with_checkpoint(self, config: dict[str, Any], path: Any) -> SweepConfig:
        """This config with the model and dataset of a baseline checkpoint's ``config.json``.

        Raises:
            ConfigError: if the sweep names another model, arguments or dataset than the checkpoint's.
            CheckpointError: if the checkpoint records user code (a model or dataset) that the sweep does
                not name again (it is never imported on its own).
        """
        name = checkpoint_model_name(config, self.model, path)  # user code only when named again
        dataset = checkpoint_dataset_name(config, self.dataset, path)
        args = (config.get("model") or {}).get("args") or {}
        for what, mine, theirs in (("model", self.model, name), ("dataset", self.dataset, recorded_dataset(config))):
            if mine is not None and mine != theirs:
                raise ConfigError(f"the sweep names {what} {mine!r} but the checkpoint {path} holds {what} "
                                  f"{theirs!r}; leave --{what} out to use the checkpoint's")
        if self.model_args and self.model_args != args:
            raise ConfigError(f"the sweep gives model arguments {self.model_args} but the checkpoint {path} was "
                              f"built with {args}")
        return replace(self, model=name, model_args=dict(args), dataset=dataset)


def parse_scope(scope: str, method: str) -> str:
    """``"global"`` -> ``"global"``; ``"weight=global,unit=layer"`` -> the given method's
    scope (``"layer"`` for a method not named)."""
    if "=" in scope:
        pairs = dict(item.strip().partition("=")[::2] for item in scope.split(",") if item.strip())
        unknown = [m for m in pairs if m not in METHODS]
        if unknown:
            raise ConfigError(f"unknown pruning method {unknown[0]!r} in scope {scope!r}; "
                              f"methods: {', '.join(METHODS)}")
        chosen = pairs.get(method, "layer")
    else:
        chosen = scope
    if chosen not in SCOPES:
        raise ConfigError(f"unknown scope {chosen!r} in {scope!r}; choose from {', '.join(SCOPES)}, "
                          "or one per method as weight=global,unit=layer")
    return chosen




def sweep_config_dict(config: SweepConfig) -> dict[str, Any]:
    """The config as plain JSON-ready data, with the model and dataset actually used."""
    data = json.loads(json.dumps(asdict(config)))
    return {**data, "model": config.resolved_model, "dataset": config.resolved_dataset}
