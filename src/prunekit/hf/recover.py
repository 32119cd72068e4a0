"""Pruning a language model with recovery: the schedules that train (``finetune``, ``iterative``,
``gradual``) on the text's training windows, next-token loss, the mask held.

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

from dataclasses import fields, replace
from typing import Any, Optional

import torch
from torch import nn

from ..errors import ConfigError
from ..losses import causal_lm_loss
from ..prune import Mask, PruneSpec
from ..schedules import Job, Recovery, get_schedule, run_schedule
from ..schedules.recipe import BUILT_IN
from ..training import TrainConfig

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


def lm_recovery(recovery: Optional[Recovery]) -> Recovery:
    """``recovery`` with each schedule's recipe through :func:`lm_config` (against the classifier defaults)."""
    recovery = recovery or CLASSIFIER
    return replace(recovery, **{name: lm_config(getattr(recovery, name), getattr(CLASSIFIER, name))
                                for name in BUILT_IN})


def check_schedule(schedule: str, recovery: Recovery) -> None:
    """Refuse what a language model's recovery cannot do, before anything is loaded.

    Raises:
        ConfigError: for ``lottery`` (a pretrained model has no initialisation to rewind to), an unknown
            schedule, or distillation (not available for language models yet).
    """
    get_schedule(schedule)
    if schedule == "lottery":
        raise ConfigError("the lottery schedule rewinds to the initial weights; a pretrained model has no "
                          "initialisation here: use finetune, iterative or gradual")
    if recovery.distill is not None:
        raise ConfigError("distillation is not available for language models yet: give a schedule without "
                          "--distill (the recovery trains on the next-token loss)")


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
    next-token loss; criteria that need data read ``calibration``.

    Returns:
        The final mask, and what the run cost (``train_epochs``, ``train_seconds``, ``train_tokens``).

    Raises:
        ConfigError: see :func:`check_schedule`.
    """
    check_schedule(schedule, recovery)
    job = Job(model, (windows, windows), spec, recovery, progress=progress, example_inputs=example_inputs,
              calibration=calibration, loss_fn=causal_lm_loss())
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
