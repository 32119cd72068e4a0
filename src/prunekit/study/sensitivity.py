"""Deprecated: the sensitivity solver is :mod:`prunekit.plan.sensitivity` (and :mod:`prunekit.plan.allocate`);
its files are written by :func:`prunekit.study.report_layers.write_sensitivity`."""

from ..plan.allocate import allocate
from ..plan.sensitivity import GRID, TARGET_KINDS, Sensitivity, aligned_grid, layer_sensitivity, training_tail
from .report_layers import write_sensitivity

__all__ = ["GRID", "TARGET_KINDS", "Sensitivity", "aligned_grid", "allocate", "layer_sensitivity", "training_tail",
           "write_sensitivity"]
