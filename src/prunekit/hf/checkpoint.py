"""A Hugging Face folder as a checkpoint: the commands that read a checkpoint (``info``, ``export``,
``compact``, ``bench latency``) take ``hf:DIR`` (or a folder prunekit wrote) as they take their own folders.

:func:`load_model_or_checkpoint` is the one place that tells the two apart: ``hf:PATH``, or a folder whose
``config.json`` is a transformers config (it names a ``model_type``), is loaded with :func:`~.load.load`;
anything else is a prunekit checkpoint (:func:`~prunekit.checkpoint.load_checkpoint`).

Example:
    >>> import tempfile
    >>> from prunekit.hf.tiny import tiny_folder
    >>> folder = tiny_folder(tempfile.mkdtemp(), "llama")
    >>> ckpt = load_model_or_checkpoint("hf:" + folder)
    >>> ckpt.config["model"]["source"].startswith("hf:"), ckpt.mask is None, example_tokens(ckpt, 8)["input_ids"].shape
    (True, True, torch.Size([1, 8]))
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from ..checkpoint import CONFIG_FILE, Checkpoint, load_checkpoint
from ..deploy.compressed_checkpoint import is_compressed_file, load_compressed_checkpoint
from ..errors import CheckpointError
from ..prune import Mask
from ..storage.jsonio import read_json
from ..storage.tensors import load_tensors

from .load import PREFIX, Pretrained, is_hf_reference, load
from .save import MASKS_FILE, RECORD_FILE


@dataclass
class LMCheckpoint(Checkpoint):
    """A :class:`~prunekit.checkpoint.Checkpoint` of a Hugging Face model; ``pretrained`` holds its tokenizer."""

    pretrained: Optional[Pretrained] = None


def is_hf_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder whose ``config.json`` is a transformers config (it has a ``model_type``)."""
    config = Path(path) / CONFIG_FILE
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and isinstance(data.get("model_type"), str)


def load_model_or_checkpoint(reference: str | os.PathLike, *, model_source: str | None = None,
                             dtype: str = "fp32") -> Checkpoint:
    """A prunekit checkpoint folder, or a Hugging Face model (``hf:DIR``, ``hf:FILE.gguf``, or a folder that
    is one) as an :class:`LMCheckpoint`: its ``masks.safetensors`` applied and checked, its ``prunekit.json``
    (if prunekit wrote it) giving the pruning record and metrics."""
    text = str(reference)
    if is_compressed_file(text):
        return load_compressed_checkpoint(text, model_source=model_source)
    if not is_hf_reference(text) and not is_hf_folder(text):
        return load_checkpoint(text, model_source=model_source)
    pretrained = load(text if is_hf_reference(text) else PREFIX + text, dtype)
    record = _record(pretrained.source)
    mask = _mask(pretrained)
    model = {"source": PREFIX + str(pretrained.source), "digest": pretrained.digest, "dtype": dtype,
             "architecture": type(pretrained.model).__name__}
    if pretrained.plan is not None:
        model["compacted_form"] = True
    if record.get("source"):  # a folder prunekit wrote: the model it was pruned from
        model.update(pruned_from=record["source"], pruned_from_digest=record.get("source_digest"))
    config = {"model": model, "pruning": record.get("pruning")}
    metrics = record.get("metrics") if isinstance(record.get("metrics"), dict) else {}
    return LMCheckpoint(pretrained.source, pretrained.model, config, metrics, mask, pretrained)


def example_tokens(ckpt: Checkpoint, length: int = 128) -> dict[str, torch.Tensor] | None:
    """One batch of ``length`` random token ids (seed 0) for a language model; ``None`` for other checkpoints."""
    if not isinstance(ckpt, LMCheckpoint):
        return None
    vocab = int(ckpt.model.get_input_embeddings().num_embeddings)
    return {"input_ids": torch.randint(0, vocab, (1, length), generator=torch.Generator().manual_seed(0))}


def _record(source: Path) -> dict[str, Any]:
    path = source / RECORD_FILE
    if not source.is_dir() or not path.is_file():
        return {}
    data = read_json(path, error=CheckpointError)
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object (prunekit's record of the pruning), "
                              f"got {type(data).__name__}")
    return data


def _mask(pretrained: Pretrained) -> Mask | None:
    path = pretrained.source / MASKS_FILE
    if not pretrained.source.is_dir() or not path.is_file():
        return None
    mask = Mask.from_tensors(load_tensors(path, what="mask file (safetensors)"), path)
    mask.validate(pretrained.model)
    mask.apply_(pretrained.model)
    return mask
