"""Pruning schedules: how a model goes from dense to sparse and recovers its accuracy.

* ``oneshot``: prune once, no training;
* ``finetune``: prune once, then fine-tune with the mask held;
* ``iterative`` (Han et al. 2015): prune a fraction of the remaining weights, fine-tune, repeat;
* ``gradual`` (Zhu & Gupta 2017): raise the sparsity along a cubic schedule while training;
* ``lottery`` (Frankle & Carbin 2019): prune, rewind the survivors to their initial (or
  early-training) values, retrain, repeat.

Every schedule works with weight and unit pruning, layer-wise or global, and can distil from
the dense model while it recovers (:mod:`prunekit.distill`). The recovery recipe is one
frozen dataclass, :class:`Recovery`.

Example:
    >>> from prunekit.schedules import Job, PruneSpec, Recovery, run_schedule
    >>> job = Job(model, (x_train, y_train), PruneSpec("unit", "layer"), Recovery())  # doctest: +SKIP
    >>> levels = [lvl for lvl in run_schedule("lottery", job, [50, 75, 90]) if lvl.recorded]  # doctest: +SKIP
"""

from .base import Job, Level, prepare_distiller, recover
from .chain import ChainStore
from .cubic import GradualPruner, cubic_sparsity
from .kinds import SCHEDULES, Gradual, PruneThenTrain, Schedule, get_schedule, register_schedule
from .recipe import PruneSpec, Recovery, fingerprint
from .rewind import cached_rewind_state, checkpoint_rewind, rewind_state
from .run import plan_levels, planned_epochs, run_schedule

__all__ = [
    "SCHEDULES", "ChainStore", "Gradual", "GradualPruner", "Job", "Level", "PruneSpec", "PruneThenTrain",
    "Recovery", "Schedule", "cached_rewind_state", "checkpoint_rewind", "cubic_sparsity", "fingerprint", "get_schedule",
    "plan_levels", "planned_epochs", "prepare_distiller", "recover", "register_schedule", "rewind_state",
    "run_schedule",
]
