"""Resumable training: the whole training state written every N steps, and a rerun that continues from it.

A state folder holds the model's weights and the optimizer's tensors (safetensors: nothing is unpickled) and
``state.json``: the step, the epoch, the history, the optimizer's settings and the recipe it was written
under. Each save replaces the folder as one unit, so an interruption (Ctrl-C, a killed job, a full disk)
leaves the last finished state loadable. :func:`~prunekit.training.train` with ``state_dir`` loads it when
present, skips the batches already seen in that epoch (the batch order is seeded per epoch) and goes on: the
result equals an uninterrupted run's.

Example:
    >>> import tempfile, torch
    >>> from torch import nn
    >>> from prunekit.training import TrainConfig, train
    >>> def run(stop_at=None, folder=None):
    ...     torch.manual_seed(0)
    ...     model = nn.Linear(4, 2)
    ...     data = (torch.randn(64, 4), torch.randint(0, 2, (64,)))
    ...     try:
    ...         train(model, data, TrainConfig(epochs=2, batch_size=16), progress=False, state_dir=folder,
    ...               state_every=2, callbacks=[Interrupt(stop_at)] if stop_at else ())
    ...     except KeyboardInterrupt:
    ...         return run(None, folder)  # the same call again: it resumes
    ...     return model.weight.detach().clone()
    >>> bool(torch.equal(run(stop_at=7, folder=tempfile.mkdtemp() + "/state"), run()))
    True
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

import torch

from ..errors import CheckpointError
from ..storage import atomic_folder, load_tensors, read_json, save_tensors, write_json

STATE_FILE, WEIGHTS_FILE, OPTIMIZER_FILE = "state.json", "model.safetensors", "optimizer.safetensors"


def save_state(folder: str | os.PathLike, state: Any) -> Path:
    """Write ``state`` (a :class:`~prunekit.training.loop.TrainState`) to ``folder``, replacing it as one unit."""
    optimizer = state.optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in optimizer["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    with atomic_folder(folder) as tmp:
        save_tensors(tmp / WEIGHTS_FILE, state.model.state_dict())
        save_tensors(tmp / OPTIMIZER_FILE, tensors)
        write_json(tmp / STATE_FILE, {"step": state.step, "epoch": state.epoch, "total_steps": state.total_steps,
                                      "recipe": state.config.to_dict(), "history": state.history,
                                      "param_groups": optimizer["param_groups"], "scalars": scalars})
    return Path(folder)


def has_state(folder: Optional[str | os.PathLike]) -> bool:
    """Whether ``folder`` holds a state :func:`save_state` finished writing."""
    return folder is not None and (Path(folder) / STATE_FILE).is_file()


def load_state(folder: str | os.PathLike, state: Any) -> None:
    """Restore the weights, the optimizer and the counters of ``state`` from ``folder``.

    Raises:
        CheckpointError: naming the folder when it was written under another recipe or for another model,
            or a file in it is missing or corrupt.
    """
    folder = Path(folder)
    saved = read_json(folder / STATE_FILE, error=CheckpointError)
    recipe = state.config.to_dict()
    if saved.get("recipe") != json.loads(json.dumps(recipe)) or saved.get("total_steps") != state.total_steps:
        raise CheckpointError(f"{folder} holds the state of another training run (recipe or length differs): "
                              f"remove it to start over, or rerun with the settings it was written under")
    weights = load_tensors(folder / WEIGHTS_FILE, what="training state weights")
    own = state.model.state_dict()
    if set(weights) != set(own) or any(weights[k].shape != own[k].shape for k in own):
        raise CheckpointError(f"{folder / WEIGHTS_FILE} does not fit this model: it was written for another one")
    state.model.load_state_dict(weights)
    tensors = load_tensors(folder / OPTIMIZER_FILE, what="training state optimizer")
    per_param: dict[int, dict[str, Any]] = {}
    for name, value in [*tensors.items(), *saved.get("scalars", {}).items()]:
        index, _, key = name.partition(".")
        per_param.setdefault(int(index), {})[key] = value
    try:
        state.optimizer.load_state_dict({"state": per_param, "param_groups": saved["param_groups"]})
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{folder / OPTIMIZER_FILE}: the optimizer state does not fit ({exc})") from None
    state.step, state.epoch, state.history = int(saved["step"]), int(saved["epoch"]), list(saved["history"])


class Interrupt:
    """A callback that raises ``KeyboardInterrupt`` once ``step`` steps are done (tests and examples)."""

    def __init__(self, step: Optional[int]):
        self.step = step

    def on_train_begin(self, state) -> None: ...
    def on_step_begin(self, state) -> None: ...
    def on_epoch_end(self, state) -> None: ...
    def on_train_end(self, state) -> None: ...

    def on_step_end(self, state) -> None:
        if self.step is not None and state.step == self.step:
            raise KeyboardInterrupt
