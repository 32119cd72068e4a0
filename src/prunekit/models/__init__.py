"""Models by name: ``get_model("mlp")``; see :mod:`prunekit.models.zoo` for the built-ins.

Any ``torch.nn.Module`` works with prunekit's training, evaluation and pruning API; the
registry only gives the built-in ones names, so checkpoints can rebuild them.
"""

from . import deep_cnns, zoo  # noqa: F401  (register the built-in models)
from .registry import MODELS, ModelInfo, fit_to_data, get_model, list_models, model_info, register_model

__all__ = ["MODELS", "ModelInfo", "fit_to_data", "get_model", "list_models", "model_info", "register_model"]
