"""Compaction: physically remove pruned units, giving a smaller dense model.

* :func:`compact` -- remove the dead units of an ``nn.Sequential`` (rows, filters, BatchNorm
  channels and the next layer's inputs);
* :mod:`~prunekit.compact.architecture` -- a JSON description of a Sequential of standard layers;
* :class:`CompactionReport` -- what happened to each layer, and why.

Example:
    >>> from torch import nn
    >>> from prunekit.prune import prune_model
    >>> model = nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 10))
    >>> result = compact(model, prune_model(model, "unit", 75.0))
    >>> result.model[0].weight.shape, result.report.params_after
    (torch.Size([75, 784]), 59635)
"""

from .architecture import LAYER_TYPES, architecture_to_json, model_from_architecture
from .plan import Plan, TensorPlan, apply_plan
from .report import STATUSES, CompactionReport, LayerCompaction
from .saved import load_compacted, save_compacted
from .api import compact
from .result import CompactResult

__all__ = ["LAYER_TYPES", "STATUSES", "CompactResult", "CompactionReport", "LayerCompaction", "Plan", "TensorPlan",
           "apply_plan", "architecture_to_json", "compact", "load_compacted", "model_from_architecture",
           "save_compacted"]
