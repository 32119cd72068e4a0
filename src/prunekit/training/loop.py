"""One training loop with callbacks.

Batches are drawn from in-memory tensors by index (no per-sample Python work), in an order
fixed by the seed, so the same seed gives the same weights on the same machine. Fine-tuning,
iterative pruning, gradual pruning and distillation all reuse :func:`train`.

Example:
    >>> from prunekit.models import get_model
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(512, 1, 28, 28, generator=g); y = (x.mean((1, 2, 3)) > 0).long()
    >>> model = get_model("lenet300", seed=0)
    >>> history = train(model, (x, y), TrainConfig(epochs=3, batch_size=64), progress=False)
    >>> len(history), history[-1]["train_accuracy"] > history[0]["train_accuracy"]
    (3, True)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..errors import ConfigError
from .config import TrainConfig, lr_factor, make_optimizer

LossFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``loss_fn(logits, x, y) -> scalar``; the default is cross-entropy against ``y``."""


@dataclass
class TrainState:
    """What callbacks see: the model, the optimizer, the step counters and the last loss."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    config: TrainConfig
    total_steps: int
    step: int = 0
    epoch: int = 0
    loss: float = float("nan")
    stop: bool = False  # a callback may set this to end training early
    batch: Tensor | None = None  # indices into the training data of the current batch
    history: list[dict] = field(default_factory=list)


class Callback:
    """Hooks into :func:`train`. Override what you need; every hook receives the TrainState."""

    def on_train_begin(self, state: TrainState) -> None: ...
    def on_step_begin(self, state: TrainState) -> None: ...
    def on_step_end(self, state: TrainState) -> None: ...
    def on_epoch_end(self, state: TrainState) -> None: ...
    def on_train_end(self, state: TrainState) -> None: ...


class MaskLike(Protocol):
    def hold(self, model: nn.Module, optimizer: torch.optim.Optimizer): ...


def cross_entropy(label_smoothing: float = 0.0) -> LossFn:
    """The default loss: cross-entropy of the logits against the labels."""
    return lambda logits, x, y: F.cross_entropy(logits, y, label_smoothing=label_smoothing)


def train(
    model: nn.Module,
    data: tuple[Tensor, Tensor],
    config: TrainConfig = TrainConfig(),
    *,
    callbacks: Sequence[Callback] = (),
    mask: MaskLike | None = None,
    loss_fn: LossFn | None = None,
    progress: bool = True,
    desc: str = "train",
) -> list[dict]:
    """Train ``model`` in place on ``data = (x, y)``.

    Args:
        model: any ``nn.Module`` mapping a batch of ``x`` to logits.
        data: input and label tensors held in memory (e.g. ``dataset.split("train")``).
        config: the recipe (:class:`TrainConfig`).
        callbacks: :class:`Callback` objects called around every step and epoch.
        mask: a pruning mask; pruned weights are held at exactly zero throughout.
        loss_fn: ``loss_fn(logits, x, y)``; default cross-entropy (distillation passes its own).
        progress: show a progress bar with the running loss and accuracy.
        desc: the progress bar's label.

    Returns:
        One dict per epoch: ``epoch``, ``loss``, ``train_accuracy``, ``seconds``.
    """
    x, y = data
    if len(x) != len(y) or len(x) == 0:
        raise ConfigError(f"training data must be non-empty with as many labels as inputs, got {len(x)} and {len(y)}")
    steps_per_epoch = math.ceil(len(x) / config.batch_size)
    total_steps = max(1, round(config.epochs * steps_per_epoch))
    optimizer = make_optimizer(model, config)
    held = mask.hold(model, optimizer) if mask is not None else None
    loss_fn = loss_fn or cross_entropy(config.label_smoothing)
    state = TrainState(model, optimizer, config, total_steps)
    generator = torch.Generator().manual_seed(config.seed)
    bar = tqdm(total=total_steps, desc=desc, disable=None if progress else True, leave=False, unit="step")
    model.train()
    try:
        for cb in callbacks:
            cb.on_train_begin(state)
        while state.step < total_steps and not state.stop:
            _run_epoch(state, x, y, generator, loss_fn, callbacks, bar)
    finally:
        bar.close()
        if held is not None:
            held.remove()
        model.eval()
    for cb in callbacks:
        cb.on_train_end(state)
    return state.history


def _run_epoch(state, x, y, generator, loss_fn, callbacks, bar) -> None:
    config, model, optimizer = state.config, state.model, state.optimizer
    order = torch.randperm(len(x), generator=generator)
    started, loss_sum, correct, seen = time.perf_counter(), 0.0, 0, 0
    for start in range(0, len(x), config.batch_size):
        if state.step >= state.total_steps or state.stop:
            break
        idx = order[start:start + config.batch_size]
        xb, yb = x[idx], y[idx]
        state.batch = idx
        for group in optimizer.param_groups:
            group["lr"] = config.lr * lr_factor(config, state.step, state.total_steps)
        for cb in callbacks:
            cb.on_step_begin(state)
        logits = model(xb)
        if state.step == 0:
            check_logits(logits, yb)
        loss = loss_fn(logits, xb, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        state.step += 1
        state.loss = loss.item()
        loss_sum += state.loss * len(idx)
        correct += (logits.argmax(1) == yb).sum().item()
        seen += len(idx)
        for cb in callbacks:
            cb.on_step_end(state)
        bar.update(1)
        bar.set_postfix(epoch=state.epoch + 1, loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}", refresh=False)
    state.epoch += 1
    state.history.append({
        "epoch": state.epoch, "loss": loss_sum / max(1, seen),
        "train_accuracy": correct / max(1, seen), "seconds": time.perf_counter() - started,
    })
    for cb in callbacks:
        cb.on_epoch_end(state)




def check_logits(logits: Tensor, labels: Tensor) -> None:
    """Check that a classifier's outputs cover the labels (a clear error instead of one from deep in torch).

    Raises:
        ConfigError: if the outputs are not ``[N, classes]`` logits or have fewer classes than the labels need.
    """
    if not isinstance(logits, Tensor) or logits.dim() != 2 or logits.shape[0] != labels.shape[0]:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ConfigError(f"the model's outputs must be [batch, classes] logits for a batch of {labels.shape[0]} "
                          f"labels, got {shape}")
    if labels.numel() and int(labels.max()) >= logits.shape[1]:
        raise ConfigError(f"the model outputs {logits.shape[1]} classes but the labels go up to {int(labels.max())}: "
                          f"build it with num_classes >= {int(labels.max()) + 1}")
