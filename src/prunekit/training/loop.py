"""One training loop with callbacks, for any data form and device.

In-memory ``(x, y)`` tensors are batched by index (no per-sample Python work) in an order fixed by
the seed, so the same seed gives the same weights on the same machine (CPU). DataLoaders,
iterables of batches and torch Datasets work too (see :mod:`.data`); batches may be dicts for
Hugging Face models, whose own loss is used when they return one. Fine-tuning, iterative and
gradual pruning and distillation all reuse :func:`train`.

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
import os
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..errors import ConfigError, TrainingError
from .config import TrainConfig, lr_factor, make_optimizer
from .distributed import data_parallel, is_main, world
from .resume import has_state, load_state, save_state
from ..batches import Batch, as_source
from ..losses import LossFn, cross_entropy, logits_of  # noqa: F401  (re-exported)
from .device import grad_scaler, model_device, precision_context, resolve_device

@dataclass
class TrainState:
    """What callbacks see: the model, the optimizer, the step counters, the current batch and the last loss."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    config: TrainConfig
    total_steps: int
    step: int = 0
    epoch: int = 0
    loss: float = float("nan")
    stop: bool = False  # a callback may set this to end training early
    batch: Batch | None = None
    history: list[dict] = field(default_factory=list)
    steps_per_epoch: int = 0


class Callback:
    """Hooks into :func:`train`. Override what you need; every hook receives the TrainState."""

    def on_train_begin(self, state: TrainState) -> None: ...
    def on_step_begin(self, state: TrainState) -> None: ...
    def on_step_end(self, state: TrainState) -> None: ...
    def on_epoch_end(self, state: TrainState) -> None: ...
    def on_train_end(self, state: TrainState) -> None: ...


class MaskLike(Protocol):
    def hold(self, model: nn.Module, optimizer: torch.optim.Optimizer): ...


def train(
    model: nn.Module,
    data: Any,
    config: TrainConfig = TrainConfig(),
    *,
    callbacks: Sequence[Callback] = (),
    mask: MaskLike | None = None,
    loss_fn: LossFn | None = None,
    device: Any = None,
    progress: bool = True,
    desc: str = "train",
    state_dir: str | os.PathLike | None = None,
    state_every: int = 0,
    samples_per_step: int = 0,
    sample_unit: str = "sample",
) -> list[dict]:
    """Train ``model`` in place.

    Args:
        model: any ``nn.Module``.
        data: ``(x, y)`` tensors in memory (the fast path), a ``DataLoader`` or iterable of batches,
            or a torch ``Dataset`` (batched with ``config.batch_size``).
        config: the recipe (:class:`TrainConfig`), its precision included.
        callbacks: :class:`Callback` objects called around every step and epoch.
        mask: a pruning mask; pruned weights are held at exactly zero throughout.
        loss_fn: ``loss_fn(outputs, batch)``; see :data:`LossFn`.
        device: ``"auto"``, ``"cpu"``, ``"cuda[:N]"``, ``"mps"`` or a ``torch.device``; the model is
            moved there (default: where it is).
        progress: show a progress bar with the running loss and accuracy.
        desc: the progress bar's label.
        state_dir: a folder for the training state (:mod:`~prunekit.training.resume`): written every
            ``state_every`` steps, and, when it already holds one, training continues from it.
        state_every: steps between two saves of the state (0: never).
        samples_per_step, sample_unit: the progress bar counts ``sample_unit`` (e.g. ``"tok"``) at this many a
            step, so it shows their rate (tokens/s), instead of steps.

    Launched as several processes (``torchrun``; :mod:`~prunekit.training.distributed`), each trains on its
    share of every batch and the gradients are averaged: the steps of one process on the whole batch.

    Returns:
        One dict per epoch: ``epoch``, ``loss``, ``train_accuracy`` (classifiers), ``seconds``.

    Raises:
        ConfigError: for data of an unknown form, a device or precision that is not available, or
            labels the model's outputs cannot cover.
        TrainingError: when the loss becomes NaN or infinite (the weights keep their last finite values).
        CheckpointError: for a ``state_dir`` written by another run (recipe, length or model).
    """
    target = resolve_device(device) if device is not None else model_device(model)
    model.to(target)
    autocast = precision_context(config.precision, target)
    source = as_source(data, config.batch_size, config.seed).to(target)
    steps_per_epoch = len(source)
    total_steps = max(1, round(config.epochs * steps_per_epoch))
    optimizer = make_optimizer(model, config)
    held = mask.hold(model, optimizer) if mask is not None else None
    loss_fn = loss_fn or cross_entropy(config.label_smoothing)
    state = TrainState(model, optimizer, config, total_steps, steps_per_epoch=steps_per_epoch)
    if has_state(state_dir):
        load_state(state_dir, state)
        source.skip_epochs(state.epoch)  # the batch orders of the epochs done, drawn again
    if state_dir is not None and state_every > 0:
        callbacks = [*callbacks, _SaveState(state_dir, state_every)]
    run = _Step(state, loss_fn, callbacks, autocast, grad_scaler(config.precision, target), target, desc,
                data_parallel(model))
    per = run.per_step = samples_per_step or 1  # the bar counts steps, or samples (tokens) when given
    bar = tqdm(total=total_steps * per, initial=state.step * per, desc=desc, disable=None if progress else True,
               leave=False, unit="step" if per == 1 else sample_unit, unit_scale=per > 1)
    model.train()
    try:
        for cb in callbacks:
            cb.on_train_begin(state)
        while state.step < total_steps and not state.stop:
            _run_epoch(state, source, run, callbacks, bar)
    finally:
        bar.close()
        if held is not None:
            held.remove()
        model.eval()
    for cb in callbacks:
        cb.on_train_end(state)
    return state.history


class _Step:
    """One optimisation step: forward (under autocast), loss, backward (scaled for fp16), update."""

    def __init__(self, state, loss_fn, callbacks, autocast, scaler, device, desc, forward):
        self.state, self.loss_fn, self.callbacks = state, loss_fn, callbacks
        self.autocast, self.scaler, self.device, self.desc = autocast, scaler, device, desc
        self.forward = forward  # the model, or its data-parallel wrapper (see .distributed)

    def __call__(self, batch: Batch) -> tuple[float, int, int]:
        state = self.state
        for group in state.optimizer.param_groups:
            group["lr"] = state.config.lr * lr_factor(state.config, state.step, state.total_steps)
        rank, processes = world()
        weight = 1.0
        if processes > 1:  # this process's share of the batch; DDP averages the gradients over all
            full, batch = batch, batch.shard(rank, processes)
            weight = processes * batch.size / full.size  # so the average is the whole batch's mean gradient
            if batch.size == 0:  # a last batch smaller than the processes: one sample, weighted 0, keeps step
                batch = full.shard(0, full.size)
        state.batch = batch
        for cb in self.callbacks:
            cb.on_step_begin(state)
        with self.autocast:
            outputs = self.forward(*batch.args, **batch.kwargs)
            if state.step == 0 and batch.labels is not None and getattr(outputs, "loss", None) is None:
                check_logits(logits_of(outputs), batch.labels)
            loss = self.loss_fn(outputs, batch)
        state.loss = loss.item()
        check_finite_loss(state, self.desc)
        if weight != 1.0:
            loss = loss * weight
        state.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(state.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            state.optimizer.step()
        state.step += 1
        return state.loss, *_correct(outputs, batch)


def check_finite_loss(state: TrainState, desc: str) -> None:
    """Stop training on a NaN or infinite loss, before it reaches the weights.

    Raises:
        TrainingError: naming ``desc``, the epoch and the step, and what usually causes it.
    """
    if not math.isfinite(state.loss):
        raise TrainingError(
            f"training diverged during {desc}: the loss is {state.loss} at epoch {state.epoch + 1}, step "
            f"{state.step + 1} of {state.total_steps}; the weights are left as they were before that step. Lower the "
            f"learning rate (lr={state.config.lr:g}) or check the data for NaN or infinite values")


def _correct(outputs: Any, batch: Batch) -> tuple[int, int]:
    """(correct predictions, samples) for a classifier's ``[N, C]`` logits; (0, 0) otherwise."""
    try:
        logits = logits_of(outputs)
    except ConfigError:
        return 0, 0
    if batch.labels is None or logits.dim() != 2 or batch.labels.dim() != 1:
        return 0, 0
    return int((logits.argmax(1) == batch.labels).sum().item()), int(batch.labels.numel())


class _SaveState(Callback):
    """Writes the training state every ``every`` steps (not after the last: the caller saves the result)."""

    def __init__(self, folder, every: int):
        self.folder, self.every = folder, every

    def on_step_end(self, state: TrainState) -> None:
        if state.step % self.every == 0 and state.step < state.total_steps and is_main():
            save_state(self.folder, state)


def _run_epoch(state: TrainState, source, run: _Step, callbacks, bar) -> None:
    started, loss_sum, correct, counted, seen = time.perf_counter(), 0.0, 0, 0, 0
    done = state.step - state.epoch * state.steps_per_epoch  # batches of this epoch seen before a resume
    for index, batch in enumerate(source.epoch(state.epoch)):
        if index < done:
            continue
        if state.step >= state.total_steps or state.stop:
            break
        batch = batch.to(run.device)
        loss, right, n = run(batch)
        loss_sum += loss * batch.size
        seen += batch.size
        correct, counted = correct + right, counted + n
        for cb in callbacks:
            cb.on_step_end(state)
        bar.update(run.per_step)
        shown = {"acc": f"{correct / counted:.4f}"} if counted else {}
        bar.set_postfix(epoch=state.epoch + 1, loss=f"{loss_sum / max(seen, 1):.4f}", **shown, refresh=False)
    state.epoch += 1
    if not seen:  # an epoch a resumed run had finished: its record is not in the saved history
        return
    record = {"epoch": state.epoch, "loss": loss_sum / max(1, seen), "seconds": time.perf_counter() - started}
    if counted:
        record["train_accuracy"] = correct / counted
    state.history.append(record)
    for cb in callbacks:
        cb.on_epoch_end(state)


def check_logits(logits: Tensor, labels: Tensor) -> None:
    """Check that a classifier's outputs cover the labels (a clear error instead of one from deep in torch).

    Raises:
        ConfigError: if the outputs do not match the labels' shape or have fewer classes than the labels need.
    """
    if not isinstance(logits, Tensor) or logits.dim() < 2 or logits.shape[0] != labels.shape[0]:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ConfigError(f"the model's outputs must be [batch, classes] logits for a batch of {labels.shape[0]} "
                          f"labels, got {shape}")
    if labels.is_floating_point():
        return
    if labels.numel() and int(labels.max()) >= logits.shape[-1]:
        raise ConfigError(f"the model outputs {logits.shape[-1]} classes but the labels go up to {int(labels.max())}: "
                          f"build it with num_classes >= {int(labels.max()) + 1}")
