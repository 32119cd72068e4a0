"""A sweep's work as jobs that any executor runs (see :mod:`.executors`).

One job is one point of an independent schedule (``oneshot``, ``finetune``, ``gradual``), or one whole
chain (``iterative``, ``lottery``: every level starts from the one before), of one replicate; a
:class:`BaselineJob` trains one replicate's baseline.

A job holds values and paths only (the sweep's config, its folder, the baseline checkpoint, the data
folder), so a worker process, or a Ray task on another machine, rebuilds what it needs and writes its
points into the sweep's point store itself, atomically, one file per point. ``OUT``, the data folder and a
given checkpoint must therefore be at the same paths on every worker: on a cluster, a shared filesystem.
The driver gathers the tables from the point files.

Example:
    >>> import tempfile
    >>> from prunekit.checkpoint import load_checkpoint
    >>> from prunekit.data import load_dataset
    >>> from prunekit.study import train_model
    >>> from prunekit.training import TrainConfig
    >>> folder = tempfile.mkdtemp()
    >>> config = SweepConfig(model="lenet300", methods=("weight",), sparsities=(50, 90))
    >>> _ = train_model("lenet300", config=TrainConfig(epochs=0.02), out=folder + "/base", progress=False)
    >>> ctx = build_context(config, load_checkpoint(folder + "/base"), "b0", load_dataset("mnist", progress=False),
    ...                     folder, measure=False)
    >>> jobs = plan_jobs(ctx, config, baseline=folder + "/base")
    >>> [str(job) for job in jobs]
    ['oneshot weight at 50%', 'oneshot weight at 90%']
    >>> len(run_job(jobs[1]).points), len(plan_jobs(ctx, config, baseline=folder + "/base"))
    (1, 1)
"""

from __future__ import annotations

import os
import socket
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..checkpoint import WEIGHTS_FILE, Checkpoint, load_checkpoint
from ..data import load_dataset
from ..errors import JobError
from ..references import is_reference
from ..plugins import load_plugins
from ..storage import fingerprint
from ..training import resolve_device
from .baseline import train_model
from .config import SweepConfig, sweep_config_dict
from .series import SeriesContext, make_context, pending, run_series
from .series_names import resolve_series


@dataclass(frozen=True)
class SweepJob:
    """One job: ``schedule`` x ``method`` at ``targets`` on one replicate's baseline.

    ``targets`` is one sparsity for an independent schedule, all the sweep's sparsities for a chain
    (which stores only those still missing); ``points`` is how many points the job stores.
    """

    config: SweepConfig  # this replicate's (:meth:`SweepConfig.for_seed`), model and dataset resolved
    out: str
    baseline: str  # the baseline checkpoint folder
    baseline_id: str
    schedule: str
    method: str
    targets: tuple[float, ...]
    points: int
    seed: int | None = None
    data_dir: str | None = None
    measure: bool = True
    device: str | None = None
    threads: int | None = None  # torch threads in a worker (None: leave as they are)

    def __str__(self) -> str:
        text = f"{self.schedule} {self.method} at {', '.join(f'{k:g}' for k in self.targets)}%"
        return text if self.seed is None else f"{text} (seed {self.seed})"


@dataclass(frozen=True)
class BaselineJob:
    """Train one replicate's baseline into ``folder`` (skipped where it is already there)."""

    config: SweepConfig
    folder: str
    data_dir: str | None = None
    threads: int | None = None
    device: str | None = None

    def __str__(self) -> str:
        return f"baseline {self.config.resolved_model} (seed {self.config.train.seed})"


@dataclass
class JobResult:
    """What a job did: the points it stored, the seconds it spent measuring them, and where it ran."""

    points: list[dict[str, Any]] = field(default_factory=list)
    measure_seconds: float = 0.0
    worker: str = ""


def build_context(config: SweepConfig, baseline: Checkpoint, baseline_id: str, data: Any, out: str | Path, *,
                  seed: int | None = None, progress: bool = False, measure: bool = True,
                  device: Any = None) -> SeriesContext:
    """The :class:`~.series.SeriesContext` of one replicate of a sweep (the driver's and every worker's)."""
    if device is not None:
        baseline.model.to(resolve_device(device))
    return make_context(baseline, baseline_id, data, Path(out), schedules=config.schedules, recovery=config.recovery,
                        specs={m: config.prune_spec(m) for m in config.methods}, progress=progress,
                        measure=measure, seed=seed, compress_bits=config.compress_bits)


def series_of(ctx: SeriesContext, config: SweepConfig) -> list[tuple[str, str, str]]:
    """The sweep's distinct series of one replicate, ``(schedule name, label, method)``: two names of one
    series (``iterative`` and ``iterative+distill`` when the recipe distils anyway) count once."""
    found: dict[tuple[str, str], str] = {}
    for schedule in config.schedules:
        label = resolve_series(schedule, ctx.recipe)[2]
        for method in config.methods:
            found.setdefault((label, method), schedule)
    return [(schedule, label, method) for (label, method), schedule in found.items()]


def plan_jobs(ctx: SeriesContext, config: SweepConfig, *, baseline: str | Path, data_dir: str | None = None,
              measure: bool = True, device: str | None = None, threads: int | None = None) -> list[SweepJob]:
    """The jobs left to do for one replicate (points already stored with the same config are not redone),
    series by series in the config's order."""
    jobs, targets = [], list(config.sparsities)
    common = dict(config=config, out=str(ctx.out), baseline=str(baseline), baseline_id=ctx.baseline_id,
                  seed=ctx.seed, data_dir=data_dir, measure=measure, device=device, threads=threads)
    for schedule, _, method in series_of(ctx, config):
        todo = pending(ctx, schedule, method, targets)
        if todo and resolve_series(schedule, ctx.recipe)[0].chained:
            jobs.append(SweepJob(schedule=schedule, method=method, targets=tuple(targets), points=len(todo), **common))
        elif todo:
            jobs += [SweepJob(schedule=schedule, method=method, targets=(k,), points=1, **common) for k in todo]
    return jobs


def run_in_context(ctx: SeriesContext, job: SweepJob,
                   on_point: Callable[[dict[str, Any]], None] | None = None) -> JobResult:
    """Run ``job`` with a context already built (the local executor's way); ``on_point`` sees every point."""
    result = JobResult(worker=worker_name())
    measured = ctx.measure_seconds

    def record(point: dict[str, Any]) -> None:
        result.points.append(point)
        if on_point is not None:
            on_point(point)

    ctx.on_point = record
    try:
        run_series(ctx, job.schedule, job.method, list(job.targets))
    finally:
        ctx.on_point = None
    result.measure_seconds = ctx.measure_seconds - measured
    return result


def run_job(job: SweepJob) -> JobResult:
    """Run one job from its paths: the entry point of worker processes and Ray tasks.

    A worker keeps the datasets and contexts it built for the next jobs of the same sweep, and loads the
    installed plug-ins (:mod:`prunekit.plugins`) as the command line did.
    """
    load_plugins()
    if job.threads:
        torch.set_num_threads(job.threads)
    return run_in_context(_worker_context(job), job)


def train_baseline(job: BaselineJob, data: Any = None, progress: bool = False) -> dict[str, Any]:
    """Train a replicate's baseline into ``job.folder`` unless it is there; returns its metrics.

    ``data``: the dataset when the caller has it loaded (default: loaded from ``job.data_dir``).
    """
    if job.threads:
        torch.set_num_threads(job.threads)
    if (Path(job.folder) / "metrics.json").exists():
        return {}
    _check_shared(Path(job.folder).parent.parent, job.data_dir)  # the sweep folder: OUT/baselines/<hash>
    config = job.config
    data = data if data is not None else _dataset(config.resolved_dataset, job.data_dir)
    return train_model(config.resolved_model, model_args=config.model_args or None, dataset=data,
                       config=config.train, out=job.folder, device=job.device, progress=progress).metrics


def load_baseline(config: SweepConfig, folder: str | Path) -> Checkpoint:
    """A baseline checkpoint of the sweep (a user's model file is named by the sweep's ``model``)."""
    return load_checkpoint(folder, model_source=config.model if is_reference(config.model) else None)


def worker_name() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


_CONTEXTS: OrderedDict[str, SeriesContext] = OrderedDict()
_DATASETS: OrderedDict[tuple[str, str | None], Any] = OrderedDict()
KEPT = 4
"""Contexts (and datasets) a worker keeps for later jobs, the most recently used."""


def _worker_context(job: SweepJob) -> SeriesContext:
    key = fingerprint({"out": job.out, "baseline": job.baseline_id, "seed": job.seed, "device": job.device,
                       "measure": job.measure, "config": sweep_config_dict(job.config)})
    if key in _CONTEXTS:
        _CONTEXTS.move_to_end(key)
        return _CONTEXTS[key]
    if not (Path(job.baseline) / WEIGHTS_FILE).is_file():
        raise JobError(f"worker {worker_name()} cannot see the baseline {job.baseline}: workers read the baseline "
                       f"and write points into the sweep folder, so {SHARED}")
    _check_shared(Path(job.out), job.data_dir)
    data = _dataset(job.config.resolved_dataset, job.data_dir)
    ctx = build_context(job.config, load_baseline(job.config, job.baseline), job.baseline_id, data, job.out,
                        seed=job.seed, measure=job.measure, device=job.device)
    _keep(_CONTEXTS, key, ctx)
    return ctx


SHARED = ("the sweep folder, the data folder and any checkpoint must be at the same paths on every worker "
          "(a shared filesystem)")


def _check_shared(out: Path, data_dir: str | None) -> None:
    for what, folder in (("the sweep folder", out), ("the data folder", data_dir)):
        if folder is not None and not Path(folder).is_dir():
            raise JobError(f"worker {worker_name()} cannot see {what} {folder}: {SHARED}")


def _dataset(name: str, data_dir: str | None) -> Any:
    key = (name, data_dir)
    if key not in _DATASETS:
        _keep(_DATASETS, key, load_dataset(name, data_dir, progress=False))
    return _DATASETS[key]


def _keep(cache: OrderedDict, key: Any, value: Any) -> None:
    cache[key] = value
    while len(cache) > KEPT:
        cache.popitem(last=False)
