"""Saved compact models: safetensors weights and a JSON plan replayed on a fresh instance (no pickle).

Example:
    >>> import tempfile, torch
    >>> from torch import nn
    >>> from prunekit.compact import compact, load_compacted
    >>> from prunekit.prune import prune_model
    >>> def build():
    ...     torch.manual_seed(0)
    ...     return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> model, x = build(), torch.randn(3, 4)
    >>> result = compact(model, prune_model(model, "unit", 50.0, example_inputs=x), example_inputs=x)
    >>> folder = result.save(tempfile.mkdtemp() + "/small")
    >>> again = load_compacted(build(), folder)
    >>> bool(torch.equal(again(x), result.model(x))), again[0].out_features
    (True, 4)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from torch import nn

from ..errors import ConfigError
from ..storage import (FolderFiles, atomic_folder, check_state_dict_fits, parse_json, read_consistently, save_tensors,
                       tensors_from_bytes, write_json)
from .plan import Plan, apply_plan

PLAN_FILE, WEIGHTS_FILE = "plan.json", "model.safetensors"


def save_compacted(result, path: str | os.PathLike) -> Path:
    """Write ``result`` (a :class:`~prunekit.compact.CompactResult`) as a folder, replacing it as one unit."""
    if result.plan is None:
        raise ConfigError("this compaction has no plan (an nn.Sequential compacted without example_inputs): save its "
                          "model with prunekit.save_checkpoint(path, result.model, model_name=None, architecture=True)")
    with atomic_folder(path) as tmp:
        write_compacted(tmp, result.model.state_dict(), result.plan, {"report": result.report.to_dict()})
    return Path(path)


def write_compacted(folder: Path, state: dict, plan: Plan, extra: Optional[dict] = None) -> None:
    """Write the compact ``state`` and its ``plan`` (with ``extra`` fields) into the existing ``folder``, which
    the caller writes atomically: what :func:`load_compacted` reads."""
    save_tensors(folder / WEIGHTS_FILE, state)
    write_json(folder / PLAN_FILE, {**plan.to_json(), **(extra or {})})


def _read_saved(files: FolderFiles) -> tuple[Plan, dict]:
    """The plan and the weights of one save of a compact folder."""
    plan_path, weights_path = files.folder / PLAN_FILE, files.folder / WEIGHTS_FILE
    plan = Plan.from_json(parse_json(files.read(PLAN_FILE, "a compaction plan (plan.json)"), plan_path), plan_path)
    state = tensors_from_bytes(files.read(WEIGHTS_FILE, "a weights file (safetensors)"), weights_path,
                               what="weights file (safetensors)")
    return plan, state


def load_compacted(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Replay a saved plan on ``model`` (a fresh instance of the class that was compacted, e.g. built
    from the same config) and load the compact weights. Nothing is unpickled and no code is imported.

    Returns:
        ``model``, now compact, in eval mode.

    Raises:
        CheckpointError: if the folder is missing or malformed, or the plan or weights do not fit ``model``
            (the model is then left as it was when the plan does not fit).
    """
    return load_compacted_with_plan(model, path)[0]


def load_compacted_with_plan(model: nn.Module, path: str | os.PathLike) -> tuple[nn.Module, Plan]:
    """:func:`load_compacted`, and the plan it replayed (read in the same pass as the weights)."""
    path = Path(path)
    plan, state = read_consistently(path, _read_saved)
    apply_plan(model, plan)
    check_state_dict_fits(model.state_dict(), state, path / WEIGHTS_FILE)
    model.load_state_dict(state)
    return model.eval(), plan
