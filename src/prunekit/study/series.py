"""One series of a sweep: a schedule and a method over all the sweep's sparsities.

A series runs :func:`~prunekit.schedules.run_schedule` from the baseline and turns every
recorded level into a result point (:mod:`.points` evaluates and measures it, :mod:`.results` stores it).
Points carry a ``config_id``: the fingerprint of everything that determines them (baseline,
schedule, method, scope, the schedule's recipe and, for chains, the levels planned), so a rerun
skips exactly the points it would compute identically. Chains checkpoint every level under
``OUT/chains/<label>-<method>-<scope>[-seed<S>]/`` and resume after the last finished one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..prune import removes_units
from ..prune.unit_criteria import needs_data
from ..schedules import ChainStore, Job, PruneSpec, Recovery, checkpoint_rewind, plan_levels, run_schedule
from ..schedules.base import RewindSource
from ..storage import fingerprint
from ..structure import ModelStructure, model_structure
from ..training import Distiller
from .points import compress_point, evaluate_point, example_batch, measure, tracing_batch
from .results import ResultStore, point_key
from .series_names import resolve_series, series_criterion

@dataclass
class SeriesContext:
    """What every series of a sweep shares."""

    model: nn.Module
    baseline_state: dict[str, Tensor]
    baseline_id: str
    train_data: tuple[Tensor, Tensor]
    test_data: tuple[Tensor, Tensor]
    store: ResultStore
    out: Path
    specs: dict[str, PruneSpec]  # method -> what its series prune with (a series' @criterion replaces the default)
    recipe: Recovery
    input_shape: tuple[int, ...] | None
    structure: ModelStructure  # built once: traced (on first unit pruning) unless the model is an nn.Sequential
    example_inputs: Any = None  # one test batch, for models whose inputs are not one tensor
    rewind: RewindSource = None
    distiller: Distiller | None = None
    progress: bool = True
    on_point: Callable[[dict[str, Any]], None] | None = None
    measure: bool = True  # add file size and latency ratios to every point
    measure_seconds: float = 0.0  # time spent measuring, kept apart from prune+evaluate time
    seed: int | None = None  # the replicate's seed in a sweep with several (None: one baseline)
    compress_bits: int | None = None  # also share + code every point with this many bits


def make_context(baseline, baseline_id: str, data, out: Path, *, schedules, recovery: Recovery,
                 specs: dict[str, PruneSpec], progress: bool = True, on_point=None, measure: bool = True,
                 seed: int | None = None, compress_bits: int | None = None) -> SeriesContext:
    """What a sweep's series share, from its baseline checkpoint and dataset: the baseline
    weights, the data, the teacher's logits (if distilling) and the lottery's rewind weights."""
    resolved = [resolve_series(name, recovery) for name in schedules]
    reads_data = any(s.reconstruct for s in specs.values()) or any(needs_data(series_criterion(n)) for n in schedules)
    trains = reads_data or any(schedule.trains for schedule, _, _ in resolved)
    train_data = data.split("train") if trains else (torch.empty(0), torch.empty(0))
    distill = next((r.distill for s, r, _ in resolved if s.trains and r.distill is not None), None)
    distiller = Distiller.from_teacher(baseline.model, train_data, distill) if distill is not None else None
    rewind = None
    if any(schedule.rewinds for schedule, _, _ in resolved):
        cache = out / "chains" / f"rewind-{baseline_id}-epoch{recovery.rewind_epoch:g}.safetensors"
        rewind = checkpoint_rewind(baseline.config, epoch=recovery.rewind_epoch, train_data=train_data,
                                   cache=cache, progress=progress)
    return SeriesContext(
        model=baseline.model, baseline_state={k: v.clone() for k, v in baseline.model.state_dict().items()},
        baseline_id=baseline_id, train_data=train_data, test_data=data.split("test"),
        store=ResultStore(out, baseline_id, seed), out=out, specs=dict(specs), recipe=recovery,
        input_shape=data.input_shape, example_inputs=example_batch(data), rewind=rewind, distiller=distiller,
        structure=model_structure(baseline.model, tracing_batch(baseline.model, "unit", data)),
        progress=progress, on_point=on_point, measure=measure, seed=seed, compress_bits=compress_bits,
    )


def series_id(ctx: SeriesContext, name: str, method: str, targets: list[float]) -> str:
    """The fingerprint every point of the series carries as ``config_id``."""
    sched, recipe, _ = resolve_series(name, ctx.recipe)
    spec = ctx.specs[method]
    key: dict[str, Any] = {"baseline": ctx.baseline_id, "schedule": sched.name, "method": method,
                           "scope": spec.scope, "layers": spec.layers, "recipe": sched.config(recipe)}
    if series_criterion(name):
        key["criterion"] = series_criterion(name)
    if spec.include_output:
        key["include_output"] = True
    if spec.reconstruct:
        key["reconstruct"] = True
    if spec.reconstruct or needs_data(series_criterion(name)):
        key["calibration_batches"] = spec.calibration_batches
    if spec.pattern is not None:
        key["pattern"] = spec.pattern
    if spec.plan is not None:
        key["ratios"], key["plan_sparsity"] = spec.plan, spec.plan_sparsity
    if spec.include_inexact:
        key["include_inexact"] = True
    if ctx.compress_bits is not None:
        key["compress_bits"] = ctx.compress_bits
    key.update(other_fields(spec))
    if sched.chained:
        key["plan"] = plan_levels(targets, recipe.round_fraction)
    return fingerprint(key)


KEYED = ("method", "scope", "layers", "criterion", "include_output", "reconstruct", "calibration_batches", "pattern",
         "plan", "plan_sparsity", "include_inexact")
"""PruneSpec fields :func:`series_id` keys by their own rules (kept so older sweeps' points are found again)."""


def other_fields(spec: PruneSpec) -> dict[str, Any]:
    """The other fields of ``spec`` that are not their defaults: a new field changes a series' id only
    where it is used."""
    return {f.name: getattr(spec, f.name) for f in fields(PruneSpec)
            if f.name not in KEYED and getattr(spec, f.name) != f.default}


def pending(ctx: SeriesContext, name: str, method: str, targets: list[float]) -> list[float]:
    """The targets of the series without a stored point of the same config."""
    label, config_id = resolve_series(name, ctx.recipe)[2], series_id(ctx, name, method, targets)
    out = []
    for k in targets:
        point = ctx.store.get(point_key(label, method, ctx.specs[method].scope, k, ctx.seed))
        if point is None or point.get("config_id") != config_id:
            out.append(k)
    return out


def chain_folder(ctx: SeriesContext, label: str, method: str) -> Path:
    """Where a chained series checkpoints its levels."""
    name = f"{label}-{method}-{ctx.specs[method].scope}"
    return ctx.out / "chains" / (name if ctx.seed is None else f"{name}-seed{ctx.seed}")


def run_series(ctx: SeriesContext, name: str, method: str, targets: list[float]) -> int:
    """Run (or resume) one series at ``targets`` (its pending ones); store every new point and pass it to
    ``ctx.on_point``. Returns the number of points stored."""
    todo = pending(ctx, name, method, targets)
    if not todo:
        return 0
    sched, recipe, label = resolve_series(name, ctx.recipe)
    config_id = series_id(ctx, name, method, targets)
    ctx.model.load_state_dict(ctx.baseline_state)
    distiller = ctx.distiller if recipe.distill is not None else None
    spec = ctx.specs[method]
    if series_criterion(name):
        spec = replace(spec, criterion=series_criterion(name))
    job = Job(ctx.model, ctx.train_data, spec, recipe, rewind=ctx.rewind, distiller=distiller, progress=ctx.progress,
              structure=ctx.structure, seed=0 if ctx.seed is None else ctx.seed)
    chain_dir = chain_folder(ctx, label, method)
    reached = ChainStore(chain_dir, config_id).reached()
    if reached is not None and reached > min(todo):  # a lost point lies behind the checkpoint
        ChainStore(chain_dir, config_id).clear()
    levels = run_schedule(sched, job, targets if sched.chained else todo, chain_dir=chain_dir,
                          fingerprint=config_id)
    stored, started = 0, time.perf_counter()
    for level in levels:
        if level.recorded and level.sparsity in todo:
            point = {"schedule": label, "method": method, "scope": spec.scope,
                     "sparsity_target": level.sparsity,
                     **evaluate_point(ctx.model, level.mask, method, ctx.test_data, input_shape=ctx.input_shape,
                                      example_inputs=ctx.example_inputs),
                     "train_epochs": level.train_epochs, "train_seconds": level.train_seconds,
                     "seconds": time.perf_counter() - started, "round": level.index, "config_id": config_id}
            if ctx.measure:
                measured, seconds = measure(ctx.model, method, ctx.input_shape, *_measuring(ctx, method))
                point.update(measured)
                ctx.measure_seconds += seconds
            if ctx.compress_bits is not None:
                point.update(compress_point(ctx.model, ctx.compress_bits, ctx.test_data))
            _store(ctx, point)
            stored += 1
        started = time.perf_counter()
    return stored


def _measuring(ctx: SeriesContext, method: str) -> tuple[Any, ModelStructure | None]:
    """The inputs a point is measured on and the structure it is compacted with: the context's trace
    where the measurement compacts a traced model (a unit series, or inputs that are not one tensor)."""
    traced = ctx.structure.example_inputs if removes_units(method) else None  # so compaction removes groups
    inputs = ctx.example_inputs if ctx.example_inputs is not None else traced
    return inputs, ctx.structure if inputs is not None and ctx.structure.traced else None


def _store(ctx: SeriesContext, point: dict[str, Any]) -> None:
    ctx.store.put(point)  # the tables of every replicate are the sweep driver's to write
    if ctx.on_point is not None:
        ctx.on_point(point)
