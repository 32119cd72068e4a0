"""Checkpoints of chained schedules, so an interrupted chain resumes from its last finished level.

A chain folder holds ``state.json`` (the fingerprint of the run, the level reached and the
training spent so far) and one ``level-<i>/`` folder with that level's weights and mask
(safetensors). The level folder is written first and ``state.json`` replaced atomically
after, so a crash never leaves a state pointing at a half-written level.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from torch import nn

from ..errors import CheckpointError
from ..prune import Mask
from ..storage import load_tensors, read_json, save_tensors, write_json
from .base import Level

STATE_FILE = "state.json"


class ChainStore:
    """The checkpoint folder of one chain (e.g. ``OUT/chains/lottery-weight-layer``).

    Args:
        folder: the folder (created on the first save).
        fingerprint: identifies the run (schedule, recipe, plan, baseline); a stored state
            with another fingerprint is ignored, so a changed config starts over.

    Example:
        >>> import tempfile
        >>> from torch import nn
        >>> model = nn.Linear(4, 2)
        >>> store = ChainStore(tempfile.mkdtemp() + "/iterative-weight-layer", "3f2a9c1e")
        >>> store.load(model) is None  # nothing finished yet
        True
        >>> store.save(Level(1, 50.0, True, Mask.ones_like(model)), model)
        >>> store.load(model).sparsity, store.reached()
        (50.0, 50.0)
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
        try:
            level_dir = self.folder / f"level-{int(state['index'])}"
            weights = load_tensors(level_dir / "model.safetensors")
            mask = Mask.load(level_dir / "masks.safetensors")
            model.load_state_dict(weights)
        except (OSError, CheckpointError, ValueError, KeyError, TypeError, RuntimeError):
            return None
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
        save_tensors(level_dir / "model.safetensors", model.state_dict())
        level.mask.save(level_dir / "masks.safetensors")
        write_json(self.folder / STATE_FILE, {
            "fingerprint": self.fingerprint, "index": level.index, "sparsity": level.sparsity,
            "recorded": level.recorded, "train_epochs": level.train_epochs, "train_seconds": level.train_seconds,
        })
        for old in self.folder.glob("level-*"):
            if old != level_dir and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
