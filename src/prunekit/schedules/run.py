"""Running a schedule over a list of target sparsities.

Independent schedules (``oneshot``, ``finetune``, ``gradual``) take every target from the dense
weights. Chained ones (``iterative``, ``lottery``) pass through every target in increasing
order, each level starting from the previous one; :func:`plan_levels` inserts extra rounds
where a step would prune more than ``round_fraction`` of the remaining weights. With a
``chain_dir``, every finished level of a chain is checkpointed and a rerun resumes after it.

Example:
    >>> import torch
    >>> from prunekit.models import get_model
    >>> from prunekit.schedules import PruneSpec, Recovery
    >>> from prunekit.training import TrainConfig
    >>> x, y = torch.randn(256, 1, 28, 28), torch.randint(0, 10, (256,))
    >>> job = Job(get_model("lenet300", seed=0), (x, y), PruneSpec("weight"),
    ...           Recovery(iterative=TrainConfig(epochs=0.25, batch_size=64)), progress=False)
    >>> [(level.sparsity, level.recorded) for level in run_schedule("iterative", job, [90, 95])]
    [(53.584112, False), (78.455653, False), (90.0, True), (95.0, True)]
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator, Sequence

import torch

from ..prune import check_sparsity
from .base import Job, Level, Stopwatch, prepare_distiller
from .chain import ChainStore
from .kinds import Schedule, get_schedule

LEVEL_SEEDS = 1_000_003
"""Levels of one job get global seeds ``job.seed * LEVEL_SEEDS + offset`` (offsets stay far below it)."""


def plan_levels(targets: Sequence[float], round_fraction: float) -> list[tuple[float, bool]]:
    """The levels a chained schedule goes through: ``[(sparsity, is_target), ...]``.

    Between consecutive targets, rounds are inserted (equal ratios of remaining weights) so
    that no round prunes more than ``round_fraction`` of the weights still remaining.

    Example:
        >>> [round(s, 1) for s, _ in plan_levels([99.0], 0.6)]
        [53.6, 78.5, 90.0, 95.4, 97.8, 99.0]
        >>> plan_levels([50.0, 75.0], 0.6)
        [(50.0, True), (75.0, True)]
    """
    levels: list[tuple[float, bool]] = []
    current = 0.0
    for target in sorted({check_sparsity(t) for t in targets}):
        if target == 0:
            levels.append((0.0, True))
            continue
        remaining, goal = 100.0 - current, 100.0 - target
        rounds = max(1, math.ceil(math.log(goal / remaining) / math.log(1.0 - round_fraction) - 1e-9))
        for i in range(1, rounds):
            levels.append((round(100.0 - remaining * (goal / remaining) ** (i / rounds), 6), False))
        levels.append((target, True))
        current = target
    return levels


def planned_epochs(schedule: str | Schedule, recipe, targets: Sequence[float]) -> float:
    """Epochs of training a run over ``targets`` will take (for progress and cost estimates)."""
    schedule = get_schedule(schedule)
    per_level = schedule.epochs_per_level(recipe)
    if schedule.chained:
        levels = [s for s, _ in plan_levels(targets, recipe.round_fraction)]
    else:
        levels = list(targets)
    return per_level * sum(1 for s in levels if s > 0)


def run_schedule(
    schedule: str | Schedule,
    job: Job,
    targets: Sequence[float],
    *,
    chain_dir: str | Path | None = None,
    fingerprint: str = "",
) -> Iterator[Level]:
    """Run ``schedule`` on ``job`` and yield every level as it finishes.

    While a level is yielded, ``job.model`` holds its weights (evaluate it then); afterwards
    the model holds the last level's weights. Levels with ``recorded=False`` are rounds a
    chain inserted between targets.

    Args:
        schedule: a name in :data:`~prunekit.schedules.SCHEDULES` or a :class:`Schedule`.
        job: the model (dense, trained), data, pruning spec and recipe.
        targets: sparsities in percent; sorted and de-duplicated.
        chain_dir: where a chained schedule checkpoints each level and resumes from.
        fingerprint: identifies the run in ``chain_dir`` (a changed run starts over).

    Returns:
        An iterator of :class:`Level`.

    Raises:
        ConfigError: for an unknown schedule or an invalid sparsity.
    """
    schedule = get_schedule(schedule)
    targets = sorted({check_sparsity(t) for t in targets})
    prepare_distiller(job)
    if schedule.chained:
        store = ChainStore(chain_dir, fingerprint) if chain_dir is not None else None
        return _chain(schedule, job, targets, store)
    return _independent(schedule, job, targets)


def _independent(schedule: Schedule, job: Job, targets: list[float]) -> Iterator[Level]:
    dense = {k: v.clone() for k, v in job.model.state_dict().items()}
    for position, target in enumerate(targets, start=1):
        job.model.load_state_dict(dense)
        stopwatch = Stopwatch()
        offset = int(round(100 * target))
        torch.manual_seed(job.seed * LEVEL_SEEDS + offset)
        mask, epochs = schedule.step(job, target, job.mask, seed_offset=offset)
        yield Level(position, target, True, mask, epochs, float(stopwatch))


def _chain(schedule: Schedule, job: Job, targets: list[float], store: ChainStore | None) -> Iterator[Level]:
    plan = plan_levels(targets, job.recipe.round_fraction)
    level = store.load(job.model) if store is not None else None
    if level is not None:
        yield level  # the last finished level again (idempotent for the caller)
    start = level.index if level is not None else 0
    mask = level.mask if level is not None else job.mask
    epochs = level.train_epochs if level is not None else 0.0
    seconds = level.train_seconds if level is not None else 0.0
    for position in range(start, len(plan)):
        sparsity, recorded = plan[position]
        stopwatch = Stopwatch()
        torch.manual_seed(job.seed * LEVEL_SEEDS + position + 1)
        mask, trained = schedule.step(job, sparsity, mask, seed_offset=position + 1)
        epochs, seconds = epochs + trained, seconds + float(stopwatch)
        level = Level(position + 1, sparsity, recorded, mask, epochs, seconds)
        if store is not None:
            store.save(level, job.model)
        yield level
