"""Pruned models out as Hugging Face folders that stock ``transformers`` loads, prunekit not installed.

The folder is ``save_pretrained``'s layout (``config.json``, ``model.safetensors``, the tokenizer files,
``generation_config.json``) with the mask applied to the weights, plus prunekit's own files beside them:
``masks.safetensors`` (one bool tensor per pruned parameter) and ``prunekit.json`` (the pruning request,
metrics, and the source folder with its digest). ``AutoModelForCausalLM.from_pretrained(folder)`` gives
the masked model's logits. Written atomically: nothing appears under the name until the whole folder is.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional

import safetensors.torch
import torch

from ..errors import ConfigError
from ..prune.mask import as_mask
from ..storage import atomic_folder, atomic_write_text

from .load import Pretrained

MASKS_FILE = "masks.safetensors"
RECORD_FILE = "prunekit.json"


def save_pretrained(pretrained: Pretrained, out: str | os.PathLike, mask: Optional[Mapping[str, torch.Tensor]] = None,
                    record: Optional[dict[str, Any]] = None) -> Path:
    """Write ``pretrained`` (with ``mask`` applied, on a copy) as a Hugging Face folder ``out``.

    Returns:
        The folder.
    """
    model = pretrained.model
    if mask is not None:
        model = copy.deepcopy(model)
        as_mask(mask).apply_(model)
    out = Path(out)
    with atomic_folder(out) as tmp:
        try:
            model.save_pretrained(tmp, safe_serialization=True)
        except (ValueError, TypeError, RuntimeError) as exc:
            raise ConfigError(f"transformers cannot save {type(model).__name__} as a folder: {exc}") from None
        pretrained.tokenizer.save_pretrained(tmp)
        if mask is not None:
            safetensors.torch.save_file({k: v.contiguous() for k, v in as_mask(mask).items()}, str(tmp / MASKS_FILE))
        meta = {"format": "prunekit.hf", "version": 1, "source": str(pretrained.source),
                "source_digest": pretrained.digest, "dtype": pretrained.dtype, **(record or {})}
        atomic_write_text(tmp / RECORD_FILE, json.dumps(meta, indent=2, default=str))
    return out
