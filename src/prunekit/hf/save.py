"""Pruned models out as Hugging Face folders that stock ``transformers`` loads, prunekit not installed.

The folder is ``save_pretrained``'s layout (``config.json``, ``model.safetensors``, the tokenizer files,
``generation_config.json``) with the mask applied to the weights, plus prunekit's own files beside them:
``masks.safetensors`` (one bool tensor per pruned parameter) and ``prunekit.json`` (the pruning request,
metrics, and the source folder with its digest). ``AutoModelForCausalLM.from_pretrained(folder)`` gives
the masked model's logits. Written atomically: nothing appears under the name until the whole folder is.

A width-pruned model no standard config describes (layers of different widths) is written with a compaction
``plan`` instead: ``config.json`` stays the dense model's and the compact weights with their plan go in
``prunekit-compacted/`` (:func:`prunekit.load_compacted`'s form); :func:`prunekit.hf.load` reads the folder,
stock transformers does not (it finds no weights and says so).
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional

import safetensors.torch
import torch

from ..compact.bypass import Bypassed
from ..compact.plan import Plan
from ..compact.saved import write_compacted
from ..errors import ConfigError
from ..prune.mask import as_mask
from ..storage import atomic_folder, atomic_write_text

from .load import COMPACTED_DIR, Pretrained

MASKS_FILE = "masks.safetensors"
RECORD_FILE = "prunekit.json"


def save_pretrained(pretrained: Pretrained, out: str | os.PathLike, mask: Optional[Mapping[str, torch.Tensor]] = None,
                    record: Optional[dict[str, Any]] = None, plan: Optional[Plan] = None) -> Path:
    """Write ``pretrained`` (with ``mask`` applied, on a copy) as a Hugging Face folder ``out``; with ``plan``
    (the compaction that made its model from the dense architecture), in prunekit's compacted form.

    Returns:
        The folder.
    """
    model = pretrained.model
    plan = plan if plan is not None else pretrained.plan  # a compacted form stays one
    if plan is None and any(isinstance(m, Bypassed) for m in model.modules()):
        raise ConfigError(f"{type(model).__name__} has attention or MLP halves removed: no standard config describes "
                          f"it; save it with the compaction plan that removed them (prunekit's compacted form)")
    if mask is not None:
        model = copy.deepcopy(model)
        as_mask(mask).apply_(model)
    out = Path(out)
    with atomic_folder(out) as tmp:
        try:
            if plan is None:
                model.save_pretrained(tmp, safe_serialization=True)
            else:
                model.config.save_pretrained(tmp)
                model.generation_config.save_pretrained(tmp)
                (tmp / COMPACTED_DIR).mkdir()
                write_compacted(tmp / COMPACTED_DIR, model.state_dict(), plan)
        except (ValueError, TypeError, RuntimeError) as exc:
            raise ConfigError(f"transformers cannot save {type(model).__name__} as a folder: {exc}") from None
        pretrained.tokenizer.save_pretrained(tmp)
        if mask is not None:
            safetensors.torch.save_file({k: v.contiguous() for k, v in as_mask(mask).items()}, str(tmp / MASKS_FILE))
        meta = {"format": "prunekit.hf", "version": 1, "source": str(pretrained.source),
                "source_digest": pretrained.digest, "dtype": pretrained.dtype, **(record or {})}
        atomic_write_text(tmp / RECORD_FILE, json.dumps(meta, indent=2, default=str))
    return out
