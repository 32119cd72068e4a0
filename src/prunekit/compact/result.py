"""What compaction returns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .report import CompactionReport
from .saved import save_compacted


@dataclass
class CompactResult:
    """What :func:`compact` returns.

    Attributes:
        model: the compact model (a new model in eval mode, of the same class; the input is untouched).
        report: a :class:`CompactionReport` with one row per layer (or coupled group).
        kept: ``{layer or group name: indices of the kept units}`` for every one whose units were removed.
        plan: with ``example_inputs``: the JSON-able :class:`~prunekit.compact.plan.Plan` that rebuilds
            the compact model from a fresh instance (see :meth:`save` and ``load_compacted``).
        structure: with ``example_inputs``: the traced :class:`~prunekit.structure.Structure`.
        difference: with ``example_inputs``: the largest output difference to the masked model on
            them, relative to the output scale (0 up to float rounding unless inexact groups were removed).
    """

    model: nn.Module
    report: CompactionReport
    kept: dict[str, torch.Tensor]
    plan: Any = None
    structure: Any = None
    difference: float | None = None

    def save(self, path) -> "Path":
        """Write the compact model as a folder: ``model.safetensors`` and ``plan.json``, replayed by
        :func:`~prunekit.compact.load_compacted` on a fresh instance of the model's class."""
        return save_compacted(self, path)


