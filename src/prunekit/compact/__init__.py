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
from .report import STATUSES, CompactionReport, LayerCompaction
from .sequential import CompactResult, compact

__all__ = ["LAYER_TYPES", "STATUSES", "CompactResult", "CompactionReport", "LayerCompaction", "architecture_to_json",
           "compact", "model_from_architecture"]
