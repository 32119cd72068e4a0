"""Gradual pruning (Zhu & Gupta 2017): the cubic sparsity schedule and the training callback.

    s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt)) ** 3,   t in {t0, t0 + dt, ..., t0 + n dt}

Sparsity rises fast while the network is redundant and slowly near the end. The callback
prunes at every ``dt``-th step (masks only shrink) and holds the current mask in between.

Example:
    >>> cubic_sparsity(0, initial=0, final=90, start=0, n=10, dt=5)
    0.0
    >>> cubic_sparsity(50, initial=0, final=90, start=0, n=10, dt=5)
    90.0
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..structure import ModelStructure
from ..prune import Mask, MaskHold, Pruner
from ..training import Callback, TrainState
from .recipe import PruneSpec


def cubic_sparsity(step: int, *, initial: float, final: float, start: int, n: int, dt: int) -> float:
    """Zhu & Gupta's target sparsity at training step ``step``.

    Args:
        step: the current step ``t``.
        initial: ``s_i``, the sparsity at ``t0`` (percent).
        final: ``s_f``, the sparsity reached at ``t0 + n * dt`` and kept after (percent).
        start: ``t0``, the first pruning step.
        n: the number of pruning steps.
        dt: steps between pruning steps.

    Returns:
        The sparsity in percent (``initial`` before ``t0``, ``final`` after ``t0 + n dt``).
    """
    if step <= start:
        return float(initial)
    progress = min(1.0, (step - start) / (n * dt))
    return float(final + (initial - final) * (1.0 - progress) ** 3)


class GradualPruner(Callback):
    """Prunes the model during :func:`~prunekit.train.train` along the cubic schedule.

    The pruning steps are placed in training-step units from the run's length: ``t0`` at
    ``start_fraction`` of the steps and ``t0 + n dt`` at (or just before) ``end_fraction``.
    Pass it as a callback and no ``mask`` to ``train()``: it holds its own, changing mask.

    Args:
        spec: method, scope and layers to prune.
        final: the final sparsity ``s_f`` (percent).
        initial: ``s_i`` (percent), usually 0.
        n: number of pruning steps.
        start_fraction, end_fraction: where pruning begins and ends, as fractions of the run.
        mask: a mask to start from (entries it prunes stay pruned).
        example_inputs: one batch the model accepts, for unit pruning of traced coupled groups.
        calibration: data for a criterion that needs it (``spec.criterion == "taylor"``).
        structure: instead of ``example_inputs``, the model's :func:`~prunekit.structure.model_structure`.

    Attributes:
        mask: the current :class:`~prunekit.prune.Mask` (``None`` before the first pruning).
        applied: ``[(step, sparsity)]`` of every pruning step taken.
    """

    def __init__(self, spec: PruneSpec, final: float, *, initial: float = 0.0, n: int = 20,
                 start_fraction: float = 0.0, end_fraction: float = 0.7, mask: Mask | None = None,
                 example_inputs: Any = None, calibration: Any = None, structure: ModelStructure | None = None):
        self.spec, self.final, self.initial, self.n = spec, final, initial, n
        self.example_inputs, self.calibration, self.structure = example_inputs, calibration, structure
        self.start_fraction, self.end_fraction = start_fraction, end_fraction
        self.mask: Mask | None = mask
        self.applied: list[tuple[int, float]] = []
        self.start, self.dt = 0, 1
        self._hold: MaskHold | None = None
        self._pruner: Pruner | None = None

    def plan(self, total_steps: int) -> tuple[int, int]:
        """``(t0, dt)`` for a run of ``total_steps`` steps; the last pruning step is before the end."""
        start = min(int(self.start_fraction * total_steps), max(0, total_steps - 1))
        end = min(int(self.end_fraction * total_steps), total_steps - 1)
        return start, max(1, (end - start) // self.n)

    def sparsity_at(self, step: int) -> float:
        """The schedule's sparsity at ``step`` (after :meth:`plan` ran at the start of training)."""
        return cubic_sparsity(step, initial=self.initial, final=self.final, start=self.start, n=self.n, dt=self.dt)

    def on_train_begin(self, state: TrainState) -> None:
        self.start, self.dt = self.plan(state.total_steps)

    def on_step_begin(self, state: TrainState) -> None:
        offset = state.step - self.start
        if offset >= 0 and offset % self.dt == 0 and offset // self.dt <= self.n:
            self._prune(state, self.sparsity_at(state.step))

    def on_train_end(self, state: TrainState) -> None:
        if not self.applied or self.applied[-1][1] < self.final:
            self._prune(state, self.final)  # a run too short to reach s_f still ends there
        self.release()

    def release(self) -> None:
        """Stop holding the mask (idempotent); the pruned weights stay zero."""
        if self._hold is not None:
            self._hold.remove()
            self._hold = None

    def _prune(self, state: TrainState, sparsity: float) -> None:
        model: nn.Module = state.model
        if self._pruner is None or self._pruner.model is not model:
            self._pruner = Pruner(model, self.spec, self.example_inputs, structure=self.structure)  # built once
        calibration = self.calibration if self.spec.needs_data else None
        self.mask = self._pruner.prune(sparsity, mask=self.mask, calibration=calibration)
        self.applied.append((state.step, sparsity))
        self.release()
        self._hold = self.mask.hold(model, state.optimizer)
