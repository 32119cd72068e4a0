"""Compact checkpoints: a compacted model saved as safetensors + JSON architecture (no pickles).

A compact checkpoint folder holds:

- ``model.safetensors``: the compact model's state dict;
- ``architecture.json``: its layers (see :mod:`prunekit.architecture`), so it rebuilds without
  the registry (a compact model's layer sizes are not a registry builder's);
- ``config.json``: ``{"format_version": 1, "model": {"name": null, "architecture":
  "architecture.json", "compacted_from": {...}}, "compaction": report, ...}``;
- ``metrics.json``: the source checkpoint's metrics, if any.

Example:
    >>> from prunekit.prune.compact import compact
    >>> result = compact(model, mask)  # doctest: +SKIP
    >>> save_compact("runs/mlp-u75-compact", result.model, report=result.report)  # doctest: +SKIP
    >>> load_compact("runs/mlp-u75-compact").model  # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from torch import nn

from .architecture import architecture_to_json, model_from_architecture
from .checkpoint import (CONFIG_FILE, FORMAT_VERSION, METRICS_FILE, WEIGHTS_FILE, check_state_dict_fits,
                         library_versions, load_state_dict_file, read_json, save_state_dict_file,
                         write_json)
from .errors import CheckpointError, ConfigError
from .prune.compact_report import CompactionReport

ARCHITECTURE_FILE = "architecture.json"


@dataclass
class CompactCheckpoint:
    """A loaded compact checkpoint: the rebuilt model (eval mode), its config and metrics."""

    path: Path
    model: nn.Sequential
    config: dict[str, Any]
    metrics: dict[str, Any]


def save_compact(
    path: str | os.PathLike,
    model: nn.Sequential,
    *,
    report: Optional[CompactionReport] = None,
    source: Optional[dict[str, Any]] = None,
    metrics: Optional[dict[str, Any]] = None,
) -> Path:
    """Write a compact checkpoint folder (created if missing).

    Args:
        path: the folder.
        model: an ``nn.Sequential`` of standard layers (see :data:`prunekit.architecture.LAYER_TYPES`).
        report: the compaction report, recorded in ``config.json``.
        source: what the model was compacted from (e.g. the source checkpoint's config), recorded.
        metrics: written to ``metrics.json``.

    Returns:
        The folder's path.

    Raises:
        ConfigError: if the model has a layer the JSON architecture cannot describe.

    Example:
        >>> save_compact("runs/tiny", nn.Sequential(nn.Linear(4, 2)))  # doctest: +SKIP
    """
    spec = architecture_to_json(model)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_state_dict_file(model, path / WEIGHTS_FILE)
    write_json(path / ARCHITECTURE_FILE, spec)
    config = {
        "format_version": FORMAT_VERSION,
        "model": {"name": None, "architecture": ARCHITECTURE_FILE, "compacted_from": source or {}},
        "compaction": report.to_dict() if report is not None else None,
        "versions": library_versions(),
    }
    write_json(path / CONFIG_FILE, config)
    write_json(path / METRICS_FILE, metrics or {})
    return path


def is_compact_checkpoint(path: str | os.PathLike) -> bool:
    """True if ``path`` is a folder holding an ``architecture.json``."""
    return (Path(path) / ARCHITECTURE_FILE).is_file()


def load_compact(path: str | os.PathLike) -> CompactCheckpoint:
    """Load a folder written by :func:`save_compact` (safetensors and JSON only).

    Raises:
        CheckpointError: naming the file that is missing, malformed, or does not fit the architecture.

    Example:
        >>> ckpt = load_compact("runs/mlp-u75-compact")  # doctest: +SKIP
        >>> ckpt.model(torch.zeros(1, 1, 28, 28)).shape  # doctest: +SKIP
        torch.Size([1, 10])
    """
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"compact checkpoint folder {path} does not exist")
    spec = read_json(path / ARCHITECTURE_FILE)
    try:
        model = model_from_architecture(spec)
    except ConfigError as exc:
        raise CheckpointError(f"{path / ARCHITECTURE_FILE}: {exc}") from None
    state = load_state_dict_file(path / WEIGHTS_FILE)
    check_state_dict_fits(model, state, path / WEIGHTS_FILE)
    model.load_state_dict(state)
    model.eval()
    config = read_json(path / CONFIG_FILE) if (path / CONFIG_FILE).exists() else {}
    metrics = read_json(path / METRICS_FILE) if (path / METRICS_FILE).exists() else {}
    return CompactCheckpoint(path, model, config, metrics)


def load_any_checkpoint(path: str | os.PathLike):
    """Load a regular checkpoint (mask applied) or a compact one: ``(model, mask or None, config, metrics)``.

    Example:
        >>> model, mask, config, metrics = load_any_checkpoint("runs/mlp-w95")  # doctest: +SKIP
    """
    from .checkpoint import load_checkpoint

    if is_compact_checkpoint(path):
        ckpt = load_compact(path)
        return ckpt.model, None, ckpt.config, ckpt.metrics
    ckpt = load_checkpoint(path)
    return ckpt.model, ckpt.mask, ckpt.config, ckpt.metrics
