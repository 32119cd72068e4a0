"""Checkpoints: weights in safetensors, everything else in JSON. Nothing is ever unpickled.

A checkpoint folder holds:

- ``model.safetensors``: the state dict;
- ``config.json``: the model's registry name and arguments (enough to rebuild it), the dataset,
  the seed, the training recipe, pruning settings and the library versions;
- ``metrics.json``: measured results (``test_accuracy`` as a fraction, ``train_seconds``, ...);
- ``masks.safetensors``: the pruning mask, for pruned models.

Example:
    >>> model = get_model("mlp", seed=0)
    >>> save_checkpoint("runs/mlp", model, model_name="mlp", metrics={"test_accuracy": 0.98})
    >>> ckpt = load_checkpoint("runs/mlp")
    >>> ckpt.metrics["test_accuracy"]
    0.98
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy
import safetensors
import safetensors.torch
import torch
from torch import nn

from . import __version__
from .errors import CheckpointError, PrunekitError
from .models import get_model
from .prune.mask import Mask

FORMAT_VERSION = 1
WEIGHTS_FILE, CONFIG_FILE, METRICS_FILE, MASK_FILE = (
    "model.safetensors", "config.json", "metrics.json", "masks.safetensors",
)


@dataclass
class Checkpoint:
    """A loaded checkpoint: the rebuilt model with its weights, its config, metrics and mask."""

    path: Path
    model: nn.Module
    config: dict[str, Any]
    metrics: dict[str, Any]
    mask: Mask | None


def library_versions() -> dict[str, str]:
    """Versions of the libraries that produced a result, for the record."""
    return {
        "prunekit": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
        "safetensors": safetensors.__version__, "python": platform.python_version(),
    }


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, so no half-written file is ever seen."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    atomic_write_text(Path(path), json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> Any:
    """Read a JSON file; a missing or malformed file raises CheckpointError naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc})") from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    model_name: str | None,
    model_args: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    mask: Mask | None = None,
    **meta: Any,
) -> Path:
    """Save ``model`` (and its ``mask``) to the folder ``path``, creating it.

    Args:
        path: the checkpoint folder.
        model: the model whose ``state_dict`` is saved.
        model_name: its registry name (``None`` for a user model, which must then be passed
            to :func:`load_checkpoint`).
        model_args: the builder arguments used, so loading rebuilds the same architecture.
        metrics: measured figures, written to ``metrics.json``.
        mask: a pruning mask, written to ``masks.safetensors``.
        **meta: anything else to record in ``config.json`` (dataset, seed, train, pruning...).

    Returns:
        The folder's path.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_state_dict_file(model, path / WEIGHTS_FILE)
    if mask is not None:
        mask.save(path / MASK_FILE)
    else:
        (path / MASK_FILE).unlink(missing_ok=True)
    config = {
        "format_version": FORMAT_VERSION,
        "model": {"name": model_name, "args": _jsonable(model_args or {})},
        **_jsonable(meta),
        "versions": library_versions(),
    }
    write_json(path / CONFIG_FILE, config)
    write_json(path / METRICS_FILE, _jsonable(metrics or {}))
    return path


def save_state_dict_file(model: nn.Module, path: Path) -> None:
    """Write ``model.state_dict()`` as safetensors through a temporary file (atomic)."""
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        safetensors.torch.save_file(state, str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file; a missing or corrupt file raises CheckpointError naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist; a checkpoint folder holds {WEIGHTS_FILE} and {CONFIG_FILE}")
    try:
        return safetensors.torch.load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"{path} is not a readable safetensors file ({exc})") from None


def check_state_dict_fits(model: nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """Raise CheckpointError listing missing, unexpected and mis-shaped tensors, if any."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    problems = []
    if missing := sorted(set(expected) - set(found)):
        problems.append(f"missing tensors {missing}")
    if unexpected := sorted(set(found) - set(expected)):
        problems.append(f"unexpected tensors {unexpected}")
    for name in sorted(set(expected) & set(found)):
        if expected[name] != found[name]:
            problems.append(f"{name}: checkpoint has shape {list(found[name])}, model expects {list(expected[name])}")
    if problems:
        raise CheckpointError(f"{source} does not fit the model: " + "; ".join(problems))


def build_model(config: dict[str, Any], source: Path) -> nn.Module:
    """Rebuild the model a ``config.json`` describes, from the registry."""
    spec = config.get("model") or {}
    name = spec.get("name")
    if name is None and spec.get("architecture"):
        from .architecture import model_from_architecture

        return model_from_architecture(read_json(source.parent / spec["architecture"]))
    if name is None:
        raise CheckpointError(
            f"{source} holds a user model with no registry name; pass the model to load_checkpoint(path, model=...)"
        )
    try:
        return get_model(name, **spec.get("args", {}))
    except PrunekitError as exc:
        raise CheckpointError(f"{source}: cannot rebuild the model ({exc})") from None


def load_checkpoint(path: str | os.PathLike, *, model: nn.Module | None = None) -> Checkpoint:
    """Load a checkpoint folder written by :func:`save_checkpoint`.

    Args:
        path: the folder.
        model: a model to load the weights into; by default it is rebuilt from ``config.json``.

    Returns:
        A :class:`Checkpoint`; its model is in eval mode with the mask (if any) applied.
    """
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint folder {path} does not exist")
    config = read_json(path / CONFIG_FILE)
    if config.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path / CONFIG_FILE} has format_version {config.get('format_version')!r}; expected {FORMAT_VERSION}"
        )
    model = model if model is not None else build_model(config, path / CONFIG_FILE)
    state = load_state_dict_file(path / WEIGHTS_FILE)
    check_state_dict_fits(model, state, path / WEIGHTS_FILE)
    model.load_state_dict(state)
    metrics = read_json(path / METRICS_FILE) if (path / METRICS_FILE).exists() else {}
    mask = None
    if (path / MASK_FILE).exists():
        mask = Mask.load(path / MASK_FILE)
        mask.validate(model)
        mask.apply_(model)
    model.eval()
    return Checkpoint(path, model, config, metrics, mask)
