"""Checkpoints of chained schedules, so an interrupted chain resumes from its last finished level.

A chain folder holds ``state.json`` (the fingerprint of the run, the level reached and the
training spent so far) and one ``level-<i>/`` folder with that level's weights and mask
(safetensors). The level folder is written first and ``state.json`` replaced atomically
after, so a crash never leaves a state pointing at a half-written level.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import safetensors.torch
from torch import nn

from ..checkpoint import read_json, write_json
from ..errors import CheckpointError
from ..prune import Mask
from .base import Level

STATE_FILE = "state.json"


class ChainStore:
    """The checkpoint folder of one chain (e.g. ``OUT/chains/lottery-weight-layer``).

    Args:
        folder: the folder (created on the first save).
        fingerprint: identifies the run (schedule, recipe, plan, baseline); a stored state
            with another fingerprint is ignored, so a changed config starts over.

    Example:
        >>> store = ChainStore("runs/x/chains/iterative-weight-layer", "3f2a9c1e")  # doctest: +SKIP
        >>> level = store.load(model)  # None, or the last finished level (weights loaded)  # doctest: +SKIP
    """

    def __init__(self, folder: str | Path, fingerprint: str):
        self.folder = Path(folder)
        self.fingerprint = fingerprint

    def load(self, model: nn.Module) -> Level | None:
        """Load the last finished level's weights into ``model`` and return the level, or
        ``None`` when there is no usable checkpoint (missing, other fingerprint, unreadable)."""
        try:
            state = read_json(self.folder / STATE_FILE)
        except CheckpointError:
            return None
        if state.get("fingerprint") != self.fingerprint:
            return None
        level_dir = self.folder / f"level-{state['index']}"
        try:
            weights = safetensors.torch.load_file(str(level_dir / "model.safetensors"))
            mask = Mask.load(level_dir / "masks.safetensors")
        except (OSError, CheckpointError, ValueError):
            return None
        model.load_state_dict(weights)
        mask.apply_(model)
        return Level(state["index"], state["sparsity"], state["recorded"], mask,
                     state["train_epochs"], state["train_seconds"])

    def reached(self) -> float | None:
        """The sparsity of the last finished level of this run, or ``None``."""
        try:
            state = read_json(self.folder / STATE_FILE)
        except CheckpointError:
            return None
        return state.get("sparsity") if state.get("fingerprint") == self.fingerprint else None

    def clear(self) -> None:
        """Forget the stored levels (the next run starts from the dense model)."""
        (self.folder / STATE_FILE).unlink(missing_ok=True)

    def save(self, level: Level, model: nn.Module) -> None:
        """Record ``level`` (with ``model``'s weights) as the last finished one."""
        level_dir = self.folder / f"level-{level.index}"
        level_dir.mkdir(parents=True, exist_ok=True)
        weights = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
        safetensors.torch.save_file(weights, str(level_dir / "model.safetensors"))
        level.mask.save(level_dir / "masks.safetensors")
        write_json(self.folder / STATE_FILE, {
            "fingerprint": self.fingerprint, "index": level.index, "sparsity": level.sparsity,
            "recorded": level.recorded, "train_epochs": level.train_epochs, "train_seconds": level.train_seconds,
        })
        for old in self.folder.glob("level-*"):
            if old != level_dir and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
