"""Pruning a language model with recovery: the schedules that train (``finetune``, ``iterative``,
``gradual``) on the text's training windows, the mask held: on the next-token loss, or distilled from the dense
model (``Recovery(distill=...)``, ``--distill``: the logit KL to a frozen copy of the model before pruning).

The text after the held-out stream is cut into windows of ``seqlen`` tokens: the training set (the
calibration sequences are its first windows; neither ever overlaps the held-out text). The schedules are
prunekit's own (:func:`~prunekit.schedules.run_schedule`); only the recipe's defaults differ for language
models (:data:`LM_RECIPE`: AdamW at a small learning rate, few sequences a step), because a pretrained model
is fine-tuned, not trained.

Example:
    >>> lm_recovery(Recovery()).finetune.optimizer, lm_recovery(Recovery()).finetune.lr
    ('adam', 5e-05)
"""

from __future__ import annotations

import copy
from dataclasses import fields, replace
from typing import Any, Optional

import torch
from torch import nn

from ..errors import ConfigError
from ..losses import causal_lm_loss
from ..prune import Mask, PruneSpec
from ..schedules import Job, Recovery, get_schedule, run_schedule
from ..schedules.recipe import BUILT_IN
from ..training import DistillConfig, TrainConfig, lm_distillation_loss

LM_RECIPE = TrainConfig(epochs=1.0, batch_size=4, lr=5e-5, optimizer="adam", weight_decay=0.0,
                        lr_schedule="onecycle", warmup_fraction=0.05)
"""How a pruned language model is fine-tuned unless told otherwise: one pass over the training windows,
four sequences a step, AdamW at 5e-5 with a short warm-up, then cosine decay."""

CLASSIFIER = Recovery()


def lm_config(config: TrainConfig, default: TrainConfig = TrainConfig()) -> TrainConfig:
    """``config`` with every setting it leaves at ``default`` (the classifier recipe) taken from
    :data:`LM_RECIPE`, so ``--epochs 0.25`` changes the epochs and keeps the language-model learning rate.

    Example:
        >>> lm_config(TrainConfig(epochs=0.25)).epochs, lm_config(TrainConfig(epochs=0.25)).lr
        (0.25, 5e-05)
    """
    return replace(config, **{f.name: getattr(LM_RECIPE, f.name) for f in fields(TrainConfig)
                              if getattr(config, f.name) == getattr(default, f.name)})


LM_DISTILL = DistillConfig(temperature=1.0, alpha=1.0)
"""How a pruned language model is distilled from its dense self unless told otherwise: the logit KL alone
(Minitron's recovery), at temperature 1."""


def lm_recovery(recovery: Optional[Recovery]) -> Recovery:
    """``recovery`` with each schedule's recipe through :func:`lm_config` (against the classifier defaults),
    and its distillation's settings left at the classifier's taken from :data:`LM_DISTILL`.

    Example:
        >>> lm_recovery(Recovery(distill=DistillConfig())).distill
        DistillConfig(temperature=1.0, alpha=1.0)
    """
    recovery = recovery or CLASSIFIER
    recovery = replace(recovery, **{name: lm_config(getattr(recovery, name), getattr(CLASSIFIER, name))
                                    for name in BUILT_IN})
    if recovery.distill is not None:
        classifier = DistillConfig()
        recovery = replace(recovery, distill=replace(recovery.distill, **{
            f.name: getattr(LM_DISTILL, f.name) for f in fields(DistillConfig)
            if getattr(recovery.distill, f.name) == getattr(classifier, f.name)}))
    return recovery


def check_schedule(schedule: str, recovery: Recovery) -> None:
    """Refuse what a language model's recovery cannot do, before anything is loaded.

    Raises:
        ConfigError: for ``lottery`` (a pretrained model has no initialisation to rewind to) or an unknown
            schedule.
    """
    get_schedule(schedule)
    if schedule == "lottery":
        raise ConfigError("the lottery schedule rewinds to the initial weights; a pretrained model has no "
                          "initialisation here: use finetune, iterative or gradual")


def training_windows(tokens: torch.Tensor, seqlen: int) -> torch.Tensor:
    """``tokens`` cut into consecutive windows ``[n, seqlen]`` (the remainder dropped)."""
    count = len(tokens) // seqlen
    if count < 1:
        raise ConfigError(f"the text after the held-out part has {len(tokens):,} tokens: not one training window "
                          f"of {seqlen}")
    return tokens[:count * seqlen].reshape(count, seqlen)


def prune_with_recovery(model: nn.Module, spec: PruneSpec, target: float, schedule: str, recovery: Recovery,
                        windows: torch.Tensor, calibration: Any, *, example_inputs: Any = None,
                        progress: bool = True) -> tuple[Mask, dict[str, Any]]:
    """Run ``schedule`` on ``model`` (in place) to ``target`` percent, training on ``windows`` with the
    next-token loss, or, when ``recovery.distill`` is set, distilling from a frozen copy of the dense model
    (:func:`~prunekit.training.lm_distillation_loss`, the teacher run on every batch); criteria that need data
    read ``calibration``.

    Returns:
        The final mask, and what the run cost (``train_epochs``, ``train_seconds``, ``train_tokens``).

    Raises:
        ConfigError: see :func:`check_schedule`.
    """
    check_schedule(schedule, recovery)
    loss_fn = causal_lm_loss()
    if recovery.distill is not None:  # the dense model as it is now is the teacher of every recovery
        teacher = copy.deepcopy(model)
        teacher.config.use_cache = False
        loss_fn = lm_distillation_loss(teacher, recovery.distill)
        recovery = replace(recovery, distill=None)  # not the classifier's precomputed logits: too many here
    job = Job(model, (windows, windows), spec, recovery, progress=progress, example_inputs=example_inputs,
              calibration=calibration, loss_fn=loss_fn)
    use_cache = getattr(model.config, "use_cache", None)
    model.config.use_cache = False  # no KV cache while training
    try:
        levels = [level for level in run_schedule(schedule, job, [target]) if level.recorded]
    finally:
        model.config.use_cache = use_cache
    model.eval()
    level = levels[-1]
    tokens = int(round(level.train_epochs * windows.numel()))
    return level.mask, {"train_epochs": level.train_epochs, "train_seconds": level.train_seconds,
                        "train_tokens": tokens}
