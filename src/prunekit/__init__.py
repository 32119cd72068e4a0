"""prunekit: neural-network pruning for PyTorch, measured.

The library's face: train a model, prune it, make the pruning real, and measure it.

Example:
    >>> import torch, prunekit
    >>> model = prunekit.get_model("lenet300", seed=0)
    >>> mask = prunekit.prune_model(model, "unit", 50.0)
    >>> small = prunekit.compact(model, mask).model
    >>> sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())
    True
    >>> report = prunekit.sparsity_report(model, mask, input_shape=(1, 1, 28, 28))
    >>> round(report.pruned.sparsity, 1)
    50.0
"""

from ._version import __version__
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint  # noqa: E402
from .compact import compact, load_compacted  # noqa: E402
from .data import load_dataset  # noqa: E402
from .errors import CheckpointError, ConfigError, DataError, PrunekitError  # noqa: E402
from .models import get_model  # noqa: E402
from .prune import Mask, from_torch_prune, prune_model, sparsity_report, to_torch_prune  # noqa: E402
from .training import TrainConfig, evaluate, train  # noqa: E402

__all__ = [
    "Checkpoint", "CheckpointError", "ConfigError", "DataError", "Mask", "PrunekitError", "TrainConfig",
    "__version__", "compact", "evaluate", "from_torch_prune", "get_model", "load_checkpoint", "load_compacted",
    "load_dataset",
    "prune_model", "save_checkpoint", "sparsity_report", "to_torch_prune", "train",
]
