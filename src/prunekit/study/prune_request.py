"""What :func:`~prunekit.study.prune_run.prune_checkpoint` prunes to: one :class:`~prunekit.prune.PruneSpec`
and one target, checked together before anything is loaded.

A target is a sparsity (percent), a per-layer plan ``{layer pattern: percent}``, a
:class:`~prunekit.plan.LatencyTarget`, or None when the spec's N:M pattern is the target. The older
keywords (``method=``, ``sparsity=``, ``ratios=``, ``target_latency=``...) are converted here, so the rest
of the run sees only the spec and the target.

Example:
    >>> spec, target = request_from_keywords(None, None, {"method": "unit", "target_latency": 0.5})
    >>> spec.method, target
    ('unit', LatencyTarget(ratio=0.5, batch=256, align=None, bn_batches=8))
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Union

from ..errors import ConfigError
from ..plan import LatencyTarget, check_latency_spec
from ..prune import PruneSpec
from ..prune.nm import parse_pattern, pattern_sparsity
from ..prune.select import check_layer_sparsities
from ..schedules import get_schedule
from .config import ONE_STEP_SCHEDULES

Target = Union[float, Mapping[str, float], LatencyTarget, None]

SPEC_KEYWORDS = ("method", "scope", "layers", "include_output", "criterion", "calibration_batches", "pattern",
                 "reconstruct", "include_inexact")
"""Older keywords of ``prune_checkpoint`` that are :class:`~prunekit.prune.PruneSpec` fields."""
TARGET_KEYWORDS = ("sparsity", "ratios", "target_latency", "latency_batch", "latency_align", "latency_bn_batches")
"""Older keywords of ``prune_checkpoint`` that give the target."""


def request_from_keywords(spec: Optional[PruneSpec], target: Target,
                          keywords: Mapping[str, Any]) -> tuple[PruneSpec, Target]:
    """``(spec, target)`` from the new arguments or the older keywords (not both for either)."""
    unknown = sorted(set(keywords) - set(SPEC_KEYWORDS) - set(TARGET_KEYWORDS))
    if unknown:
        raise TypeError(f"prune_checkpoint() got unexpected keyword arguments: {', '.join(unknown)}")
    fields = {k: keywords[k] for k in SPEC_KEYWORDS if keywords.get(k) is not None}
    if fields:
        if spec is not None:
            raise ConfigError("give the pruning request as a PruneSpec or as keywords (method=...), not both")
        if isinstance(fields.get("layers"), list):
            fields["layers"] = tuple(fields["layers"])
        spec = PruneSpec(fields.pop("method", "weight"), **fields)
    spec = spec if spec is not None else PruneSpec()
    given = {k: keywords[k] for k in ("sparsity", "ratios", "target_latency") if keywords.get(k) is not None}
    if len(given) > 1 or (given and target is not None):
        raise _not_one()
    if keywords.get("latency_align") is not None and "target_latency" not in given:
        raise ConfigError("channel alignment (--align-channels) applies to a latency target (--target-latency)")
    if "target_latency" in given:
        target = LatencyTarget(given["target_latency"], keywords.get("latency_batch") or 256,
                               keywords.get("latency_align"), keywords.get("latency_bn_batches", 8))
    elif given:
        target = next(iter(given.values()))
    return spec, target


def check_request(spec: PruneSpec, target: Target, schedule: str) -> Target:
    """``target``, checked with ``spec`` and ``schedule``: the pattern's sparsity when the pattern is the
    target, a plan's layer sparsities checked, a latency target's method able to remove units.

    Raises:
        ConfigError: for none or two targets, a pattern with a schedule of many steps, a criterion given
            as a function (config.json records names), or a latency target for weight pruning.
    """
    if (target is None) == (spec.pattern is None):
        raise _not_one()
    if spec.pattern is not None:
        if schedule not in ONE_STEP_SCHEDULES:
            raise ConfigError(f"an N:M pattern prunes in one step: use --schedule oneshot or finetune, not {schedule!r}")
        target = pattern_sparsity(*parse_pattern(spec.pattern))
    if spec.criterion is not None and not isinstance(spec.criterion, str):
        raise ConfigError("a pruned checkpoint records its request in config.json: give the criterion by a registered "
                          "name (register yours in prunekit.prune.CRITERIA), not a function")
    if isinstance(target, LatencyTarget):
        check_latency_spec(spec)
    elif isinstance(target, Mapping):
        target = check_layer_sparsities(dict(target))
    get_schedule(schedule)
    return target


def _not_one() -> ConfigError:
    return ConfigError("give exactly one of a sparsity, per-layer ratios, a latency target or an N:M pattern "
                       "(--sparsity, --ratios, --target-latency, --pattern)")
