"""Checkpoint folders: weights in safetensors, everything else in JSON. Nothing is ever unpickled,
and no code named inside a checkpoint is ever imported.

A checkpoint folder holds:

- ``model.safetensors``: the state dict;
- ``config.json``: how to rebuild the model (a registry name and arguments, or a JSON
  architecture file beside it), the dataset, the input shape, the seed, the training recipe,
  pruning settings and the library versions;
- ``metrics.json``: measured results (``test_accuracy`` as a fraction, ``train_seconds``, ...);
- ``masks.safetensors``: the pruning mask, for pruned models;
- ``architecture.json``: for compact models, their layers (see :mod:`prunekit.compact.architecture`);
- ``manifest.json``: the files above with their sizes and SHA-256 (see :mod:`prunekit.storage.owned`).

The folder is written as one unit: built under a temporary name and swapped in, so a crash
never leaves new weights beside old masks; files of the user's in the folder are kept. A load
reads one whole save: files that are not the ones the manifest lists (another process replaced
the folder meanwhile) make it read again.

Example:
    >>> import tempfile
    >>> from prunekit.models import get_model
    >>> folder = tempfile.mkdtemp() + "/mlp"
    >>> _ = save_checkpoint(folder, get_model("lenet300", seed=0), model_name="lenet300",
    ...                     metrics={"test_accuracy": 0.98})
    >>> ckpt = load_checkpoint(folder)
    >>> ckpt.metrics["test_accuracy"], type(ckpt.model).__name__
    (0.98, 'Sequential')
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy
import safetensors
import torch
from torch import nn

from .._version import __version__
from ..compact.architecture import architecture_to_json, model_from_architecture
from ..compact.plan import Plan, apply_plan
from ..data import DATASETS
from ..errors import CheckpointError, PrunekitError
from ..models import get_model
from ..prune.mask import Mask, as_mask
from ..references import is_reference
from .user_code import checkpoint_model_name
from ..storage import (FolderFiles, Snapshot, atomic_folder, check_state_dict_fits, parse_json, read_consistently, require,
                       save_tensors, tensors_from_bytes, write_json)

FORMAT_VERSION = 1
WEIGHTS_FILE, CONFIG_FILE, METRICS_FILE, MASK_FILE, ARCHITECTURE_FILE = (
    "model.safetensors", "config.json", "metrics.json", "masks.safetensors", "architecture.json",
)


@dataclass
class Checkpoint:
    """A loaded checkpoint: the rebuilt model with its weights, its config, metrics and mask."""

    path: Path
    model: nn.Module
    config: dict[str, Any]
    metrics: dict[str, Any]
    mask: Mask | None

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """One sample's shape: as recorded at training time, else that of the recorded dataset
        (``None`` if neither is known)."""
        shape = self.config.get("input_shape")
        if isinstance(shape, list) and all(isinstance(v, int) for v in shape):
            return tuple(shape)
        dataset = self.config.get("dataset")
        if isinstance(dataset, str) and dataset in DATASETS:
            return tuple(getattr(DATASETS.get(dataset), "input_shape", None) or ()) or None
        return None


def library_versions() -> dict[str, str]:
    """Versions of the libraries that produced a result, for the record."""
    return {
        "prunekit": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
        "safetensors": safetensors.__version__, "python": platform.python_version(),
    }


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    model_name: str | None,
    model_args: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    mask: Mapping[str, torch.Tensor] | None = None,
    architecture: bool = False,
    plans: Sequence[dict[str, Any]] = (),
    **meta: Any,
) -> Path:
    """Save ``model`` (and its ``mask``) as the checkpoint folder ``path``, replacing it as one unit.

    Args:
        path: the checkpoint folder.
        model: the model whose ``state_dict`` is saved.
        model_name: its registry name (``None`` for a user model, which must then be passed
            to :func:`load_checkpoint`, or described with ``architecture=True``).
        model_args: the builder arguments used, so loading rebuilds the same architecture.
        metrics: measured figures, written to ``metrics.json``.
        mask: a pruning mask, written to ``masks.safetensors``.
        architecture: describe the model's layers in ``architecture.json`` (an ``nn.Sequential``
            of standard layers, e.g. a compact model) so it rebuilds without the registry.
        plans: compaction plans (:meth:`~prunekit.compact.Plan.to_json`) that turn the model
            ``model_name`` builds into ``model``, in order (a compacted traced model); loading
            rebuilds that model and replays them.
        **meta: anything else to record in ``config.json`` (dataset, input_shape, seed, train...).

    Returns:
        The folder's path.

    Raises:
        OutputError: if the folder cannot be written.
    """
    spec = {"name": None if is_reference(model_name) else model_name, "args": dict(model_args or {})}
    if is_reference(model_name):
        spec["source"] = model_name  # recorded, never imported when loading
    arch = architecture_to_json(model) if architecture else None
    if arch is not None:
        spec["architecture"] = ARCHITECTURE_FILE
    if plans:
        spec["plans"] = [dict(plan) for plan in plans]
    config = {"format_version": FORMAT_VERSION, "model": spec, **meta, "versions": library_versions()}
    with atomic_folder(path) as tmp:
        save_tensors(tmp / WEIGHTS_FILE, model.state_dict())
        if mask is not None:
            as_mask(mask).save(tmp / MASK_FILE)
        if arch is not None:
            write_json(tmp / ARCHITECTURE_FILE, arch)
        write_json(tmp / CONFIG_FILE, config)
        write_json(tmp / METRICS_FILE, metrics or {})
    return Path(path)


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """The checked ``config.json`` of a checkpoint folder (types of the fields prunekit reads).

    Raises:
        CheckpointError: naming the folder or field that is missing or malformed.
    """
    return read_consistently(_folder(path), _config)


def _folder(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint folder {path} {'is a file' if path.exists() else 'does not exist'}")
    return path


def _json(files: FolderFiles, name: str, what: str) -> Any:
    return parse_json(files.read(name, what), files.folder / name)


def _config(files: FolderFiles) -> dict[str, Any]:
    where = files.folder / CONFIG_FILE
    config = _json(files, CONFIG_FILE, "a checkpoint config (config.json)")
    if not isinstance(config, dict):
        raise CheckpointError(f"{where}: expected a JSON object, got {type(config).__name__}")
    version = require(config, "format_version", int, where=where)
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{where} has format_version {version!r}; expected {FORMAT_VERSION}")
    spec = require(config, "model", dict, where=where)
    require(spec, "name", str, where=f"{where}: model", default=None)
    require(spec, "args", dict, where=f"{where}: model", default={})
    require(spec, "source", str, where=f"{where}: model", default=None)
    require(spec, "plans", list, where=f"{where}: model", default=None)
    arch = require(spec, "architecture", str, where=f"{where}: model", default=None)
    if arch is not None and (Path(arch).name != arch or arch in ("", ".", "..")):
        raise CheckpointError(f"{where}: model.architecture must name a file inside the checkpoint folder, "
                              f"got {arch!r}")
    shape = require(config, "input_shape", list, where=where, default=None)
    if shape is not None and not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape):
        raise CheckpointError(f"{where}: input_shape must be a list of positive integers, got {shape!r}")
    return config


def build_model(config: dict[str, Any], folder: Path, model_source: str | None = None, *,
                files: FolderFiles | None = None) -> nn.Module:
    """Rebuild the model a checked ``config.json`` describes: from its architecture file or the registry.

    A model built by user code is rebuilt only when the caller names the same code (``model_source``):
    a reference inside a checkpoint is never imported on its own (see :mod:`.user_code`). ``files``:
    the save being read (its architecture file is read from it).
    """
    spec = config["model"]
    name = checkpoint_model_name(config, model_source, folder)
    if spec.get("source") is not None:
        return replay_plans(config, get_model(name, **spec.get("args", {})), folder)
    try:
        if spec.get("architecture"):
            arch = Path(folder) / spec["architecture"]
            try:
                return model_from_architecture(_json(files or FolderFiles(Path(folder)), spec["architecture"],
                                                     "an architecture file"))
            except CheckpointError:
                raise
            except PrunekitError as exc:
                raise CheckpointError(f"{arch}: {exc}") from None
        if spec.get("name") is None:
            raise CheckpointError(f"{folder / CONFIG_FILE} holds a user model with no registry name; pass the "
                                  f"model to load_checkpoint(path, model=...)")
        return replay_plans(config, get_model(spec["name"], **spec.get("args", {})), folder)
    except CheckpointError:
        raise
    except PrunekitError as exc:
        raise CheckpointError(f"{folder / CONFIG_FILE}: cannot rebuild the model ({exc})") from None


def replay_plans(config: dict[str, Any], model: nn.Module, folder: Path) -> nn.Module:
    """``model`` (as the checkpoint's model source builds it) compacted by the plans ``config.json`` records."""
    for i, plan in enumerate(config["model"].get("plans") or ()):
        where = f"{Path(folder) / CONFIG_FILE}: model.plans[{i}]"
        try:
            apply_plan(model, Plan.from_json(plan, where))
        except CheckpointError:
            raise
        except PrunekitError as exc:
            raise CheckpointError(f"{where} does not fit the model ({exc})") from None
    return model


def load_checkpoint(path: str | os.PathLike, *, model: nn.Module | None = None,
                    model_source: str | None = None) -> Checkpoint:
    """Load a checkpoint folder written by :func:`save_checkpoint`.

    Every file is read from one save: a folder replaced by another process while it is read is read
    again (see :func:`~prunekit.storage.read_consistently`), never mixed.

    Args:
        path: the folder.
        model: a model to load the weights into (for a compacted traced model: a fresh instance of the
            model before compaction; its recorded plans are replayed); by default it is rebuilt from
            ``config.json``.
        model_source: for a checkpoint of a user model: the same ``FILE.py:FUNCTION`` reference it
            records, to rebuild the model with it (loading never imports code on its own).

    Returns:
        A :class:`Checkpoint`; its model is in eval mode with the mask (if any) applied.

    Raises:
        CheckpointError: naming the file or tensor that is missing, malformed, or does not fit.
    """
    return load_checkpoint_files(read_consistently(_folder(path), _read_save), model, model_source)


def _read_save(files: FolderFiles) -> Snapshot:
    """The bytes of every file of one save a load needs (the model is built from them afterwards, once)."""
    architecture = _config(files)["model"].get("architecture")
    names = {CONFIG_FILE: "a checkpoint config (config.json)", WEIGHTS_FILE: "a weights file (safetensors)",
             METRICS_FILE: "a metrics file", MASK_FILE: "a mask file (safetensors)"}
    if architecture:
        names[architecture] = "an architecture file"
    return files.snapshot({n: what for n, what in names.items() if n in (CONFIG_FILE, WEIGHTS_FILE) or files.has(n)})


def load_checkpoint_files(files: Snapshot, model: nn.Module | None = None, model_source: str | None = None) -> Checkpoint:
    """The checkpoint whose files ``files`` holds in memory (a folder's save as read, or the files a compressed
    file carries): checked and built as :func:`load_checkpoint` does."""
    path = files.folder
    config = _config(files)
    model = replay_plans(config, model, path) if model is not None else \
        build_model(config, path, model_source, files=files)
    state = tensors_from_bytes(files.read(WEIGHTS_FILE, "a weights file (safetensors)"), path / WEIGHTS_FILE,
                               what="weights file (safetensors)")
    check_state_dict_fits(model.state_dict(), state, path / WEIGHTS_FILE)
    model.load_state_dict(state)
    metrics = _json(files, METRICS_FILE, "a metrics file") if files.has(METRICS_FILE) else {}
    if not isinstance(metrics, dict):
        raise CheckpointError(f"{path / METRICS_FILE}: expected a JSON object, got {type(metrics).__name__}")
    mask = None
    if files.has(MASK_FILE):
        where = path / MASK_FILE
        mask = Mask.from_tensors(tensors_from_bytes(files.read(MASK_FILE, "a mask file"), where,
                                                    what="mask file (safetensors)"), where)
        mask.validate(model)
        mask.apply_(model)
    model.eval()
    return Checkpoint(path, model, config, metrics, mask)
