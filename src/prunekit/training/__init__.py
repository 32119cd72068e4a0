"""Training: one loop with callbacks (:func:`train`), :func:`evaluate`, the recipe
(:class:`TrainConfig`) and distillation.

Example:
    >>> config = TrainConfig(epochs=1, lr=0.01)
    >>> config.optimizer, config.lr_schedule
    ('sgd', 'onecycle')
"""

from .config import LR_SCHEDULES, OPTIMIZERS, TrainConfig, lr_factor, make_optimizer
from .distill import DistillConfig, Distiller, distillation_loss, soft_target_kl, teacher_logits
from .evaluate import evaluate
from .loop import Callback, LossFn, TrainState, check_logits, cross_entropy, train

__all__ = ["Callback", "DistillConfig", "Distiller", "LR_SCHEDULES", "LossFn", "OPTIMIZERS", "TrainConfig",
           "TrainState", "check_logits", "cross_entropy", "distillation_loss", "evaluate", "lr_factor",
           "make_optimizer", "soft_target_kl", "teacher_logits", "train"]
