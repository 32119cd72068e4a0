"""How to train: :class:`TrainConfig` (a frozen dataclass), the optimizer and the learning-rate schedule.

Example:
    >>> config = TrainConfig(epochs=2, lr=0.05)
    >>> [round(lr_factor(config, step, 100), 3) for step in (0, 15, 100)]
    [0.04, 1.0, 0.0]
    >>> TrainConfig(weight_decay=-1)
    Traceback (most recent call last):
    ...
    prunekit.errors.ConfigError: weight_decay must be a number >= 0, got -1
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from ..errors import ConfigError

OPTIMIZERS = ("sgd", "adam")
LR_SCHEDULES = ("onecycle", "cosine", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """How to train. The defaults are the recipe that takes the reference MLP past 98% MNIST
    test accuracy in about a minute on two CPU cores (see README).

    Args:
        epochs: passes over the training set (may be fractional, e.g. 0.5).
        batch_size: samples per step.
        lr: peak learning rate.
        optimizer: ``"sgd"`` (Nesterov momentum) or ``"adam"``.
        momentum: SGD momentum.
        weight_decay: L2 penalty (decoupled for Adam: AdamW).
        lr_schedule: ``"onecycle"`` (warm-up then cosine annealing), ``"cosine"`` or ``"constant"``.
        warmup_fraction: share of the steps spent warming up with ``onecycle``.
        label_smoothing: cross-entropy label smoothing.
        seed: seeds the batch order (and dropout, if any).
        precision: ``fp32``, or autocast to ``bf16`` (CPU or GPU) or ``fp16`` (GPU, with a gradient scaler).
    """

    epochs: float = 5.0
    batch_size: int = 256
    lr: float = 0.1
    optimizer: str = field(default="sgd", metadata={"choices": OPTIMIZERS})
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_schedule: str = field(default="onecycle", metadata={"choices": LR_SCHEDULES})
    warmup_fraction: float = 0.15
    label_smoothing: float = 0.0
    seed: int = 0
    precision: str = field(default="fp32", metadata={"choices": ("fp32", "bf16", "fp16")})

    def __post_init__(self) -> None:
        if not (self.epochs > 0 and math.isfinite(self.epochs)):
            raise ConfigError(f"epochs must be a positive number, got {self.epochs!r}")
        if int(self.batch_size) != self.batch_size or self.batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"lr must be a positive number, got {self.lr!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(
                f"unknown lr_schedule {self.lr_schedule!r}; choose one of {', '.join(LR_SCHEDULES)}"
            )
        _in_range("momentum", self.momentum, 0.0, 1.0, closed_high=False)
        _in_range("weight_decay", self.weight_decay, 0.0, math.inf)
        _in_range("warmup_fraction", self.warmup_fraction, 0.0, 1.0, closed_high=False)
        _in_range("label_smoothing", self.label_smoothing, 0.0, 1.0, closed_high=False)
        if isinstance(self.seed, bool) or int(self.seed) != self.seed or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ConfigError(f"unknown precision {self.precision!r}; choose one of fp32, bf16, fp16")

    def to_dict(self) -> dict:
        return asdict(self)


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer ``config`` names, over the model's trainable parameters.

    Raises:
        ConfigError: if the model has no trainable parameters.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError(f"the model ({type(model).__name__}) has no trainable parameters: there is nothing to train")
    if config.optimizer == "adam":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        params, lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0,
        weight_decay=config.weight_decay,
    )


def lr_factor(config: TrainConfig, step: int, total_steps: int) -> float:
    """The learning-rate multiplier at ``step`` (0-based) of ``total_steps``."""
    if config.lr_schedule == "constant":
        return 1.0
    progress = step / max(1, total_steps)
    warmup = config.warmup_fraction if config.lr_schedule == "onecycle" else 0.0
    if progress < warmup:
        return 0.04 + 0.96 * progress / warmup
    return 0.5 * (1 + math.cos(math.pi * (progress - warmup) / (1 - warmup)))


def _in_range(name: str, value: float, low: float, high: float, *, closed_high: bool = True) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= low and \
        (value <= high if closed_high else value < high) and not math.isnan(value)
    if not ok:
        bound = f">= {low:g}" if high == math.inf else f"in [{low:g}, {high:g}{']' if closed_high else ')'}"
        raise ConfigError(f"{name} must be a number {bound}, got {value!r}")
