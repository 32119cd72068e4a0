"""Training: one loop with callbacks (:func:`train`), :func:`evaluate`, the recipe
(:class:`TrainConfig`) and distillation.

Example:
    >>> config = TrainConfig(epochs=1, lr=0.01)
    >>> config.optimizer, config.lr_schedule
    ('sgd', 'onecycle')
"""

from .config import LR_SCHEDULES, OPTIMIZERS, TrainConfig, lr_factor, make_optimizer
from ..batches import Batch, as_source, first_batch, to_batch
from .device import PRECISIONS, model_device, resolve_device
from .distill import DistillConfig, Distiller, distillation_loss, lm_distillation_loss, soft_target_kl, teacher_logits
from .batchnorm import has_batchnorm, recalibrate_batchnorm
from .evaluate import evaluate
from .loop import Callback, LossFn, TrainState, check_logits, cross_entropy, logits_of, train

__all__ = ["Batch", "Callback", "DistillConfig", "Distiller", "LR_SCHEDULES", "LossFn", "OPTIMIZERS", "PRECISIONS",
           "TrainConfig", "TrainState", "as_source", "check_logits", "cross_entropy", "distillation_loss", "lm_distillation_loss", "evaluate",
           "first_batch", "has_batchnorm", "logits_of", "lr_factor", "make_optimizer", "model_device", "recalibrate_batchnorm", "resolve_device",
           "soft_target_kl", "teacher_logits", "to_batch", "train"]
