"""Checkpoint folders: safetensors weights and masks, JSON config and metrics (no pickles).

Example:
    >>> import tempfile
    >>> from prunekit.models import get_model
    >>> path = save_checkpoint(tempfile.mkdtemp() + "/ck", get_model("lenet5", seed=0), model_name="lenet5")
    >>> sorted(p.name for p in path.iterdir())
    ['config.json', 'manifest.json', 'metrics.json', 'model.safetensors']
"""

from .folder import (ARCHITECTURE_FILE, CONFIG_FILE, FORMAT_VERSION, MASK_FILE, METRICS_FILE, WEIGHTS_FILE,
                     Checkpoint, build_model, library_versions, load_checkpoint, load_checkpoint_files, read_config,
                     replay_plans, save_checkpoint)
from .user_code import checkpoint_dataset_name, checkpoint_model_name

__all__ = ["ARCHITECTURE_FILE", "CONFIG_FILE", "Checkpoint", "FORMAT_VERSION", "MASK_FILE", "METRICS_FILE",
           "WEIGHTS_FILE", "build_model", "checkpoint_dataset_name", "checkpoint_model_name", "library_versions",
           "load_checkpoint", "load_checkpoint_files", "read_config", "replay_plans", "save_checkpoint"]
