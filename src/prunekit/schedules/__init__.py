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
    >>> import torch
    >>> from prunekit.models import get_model
    >>> from prunekit.training import TrainConfig
    >>> x, y = torch.randn(256, 1, 28, 28), torch.randint(0, 10, (256,))
    >>> model = get_model("lenet300", seed=0)
    >>> quick = TrainConfig(epochs=0.5, batch_size=64)
    >>> job = Job(model, (x, y), PruneSpec("unit", "layer"), Recovery(lottery=quick, round_fraction=0.8),
    ...           rewind=get_model("lenet300", seed=0).state_dict(), progress=False)
    >>> [lvl.sparsity for lvl in run_schedule("lottery", job, [50, 75, 90]) if lvl.recorded]
    [50.0, 75.0, 90.0]
"""

from .base import Job, Level, prepare_distiller, recover
from .chain import ChainStore
from .cubic import GradualPruner, cubic_sparsity
from .kinds import SCHEDULES, Gradual, PruneThenTrain, Schedule, get_schedule, register_schedule
from .recipe import PruneSpec, Recovery
from ..storage import fingerprint
from .rewind import cached_rewind_state, checkpoint_rewind, rewind_state
from .run import plan_levels, planned_epochs, run_schedule

__all__ = [
    "SCHEDULES", "ChainStore", "Gradual", "GradualPruner", "Job", "Level", "PruneSpec", "PruneThenTrain",
    "Recovery", "Schedule", "cached_rewind_state", "checkpoint_rewind", "cubic_sparsity", "fingerprint", "get_schedule",
    "plan_levels", "planned_epochs", "prepare_distiller", "recover", "register_schedule", "rewind_state",
    "run_schedule",
]
