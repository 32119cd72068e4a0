"""A compressed file as a checkpoint of its own, and any checkpoint as a compressed file.

The file records the files of the checkpoint it came from that describe the model (``config.json``, an
``architecture.json`` if there is one, and ``metrics.json``), so :func:`load_compressed_checkpoint` rebuilds
the model as :func:`~prunekit.checkpoint.load_checkpoint` does (the registry or the architecture file; a user
model only when the caller names its code, never from the file) and loads the decoded weights, the zeros of
every quantized weight as its mask. :func:`lossless_codes` finds, in any model, the weights whose non-zero
values take at most 256 values (a model whose weights were shared), so ``prunekit export --format
compressed`` codes them without changing a bit; the other tensors are stored as they are.

Example:
    >>> import tempfile, torch
    >>> from prunekit.checkpoint import load_checkpoint, save_checkpoint
    >>> from prunekit.models import get_model
    >>> from prunekit.prune import prune_model
    >>> from prunekit.quantize import share_weights
    >>> model = get_model("lenet300", seed=0)
    >>> _ = prune_model(model, "weight", 90.0)
    >>> _ = share_weights(model, 4).freeze()
    >>> folder = save_checkpoint(tempfile.mkdtemp() + "/ck", model, model_name="lenet300", dataset="mnist")
    >>> info = export_checkpoint_compressed(load_checkpoint(folder), folder.parent / "m.pkz")
    >>> sorted(t.name for t in info.tensors)
    ['classifier.weight', 'fc1.weight', 'fc2.weight']
    >>> again = load_compressed_checkpoint(info.path)
    >>> state = again.model.state_dict()
    >>> all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    True
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Optional

import safetensors.torch
import torch
from torch import nn

from ..checkpoint import CONFIG_FILE, MASK_FILE, METRICS_FILE, WEIGHTS_FILE, Checkpoint, load_checkpoint_files
from ..errors import CheckpointError
from ..prune.layers import prunable_layers
from ..quantize import QuantizedWeight
from ..storage import Snapshot
from .compressed import MAGIC, CompressedExport, export_compressed, load_compressed

RECORD_KEY = "checkpoint"
"""The metadata entry that holds the source checkpoint's files, by name, as text."""


def is_compressed_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file that starts as a prunekit compressed file does."""
    path = Path(path)
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC


def checkpoint_record(ckpt: Checkpoint, metrics: Optional[Mapping[str, Any]] = None) -> dict[str, str]:
    """The files of ``ckpt`` that describe its model, as text, to record in a compressed file (``metrics``:
    instead of the checkpoint's own)."""
    record = {CONFIG_FILE: json.dumps(ckpt.config, sort_keys=True),
              METRICS_FILE: json.dumps(dict(metrics if metrics is not None else ckpt.metrics), sort_keys=True,
                                       default=str)}
    architecture = ckpt.config.get("model", {}).get("architecture")
    if architecture:
        record[architecture] = (Path(ckpt.path) / architecture).read_text()
    return record


def load_compressed_checkpoint(path: str | os.PathLike, *, model: Optional[nn.Module] = None,
                               model_source: Optional[str] = None) -> Checkpoint:
    """The model a compressed file holds, rebuilt from the checkpoint files it records, with its weights decoded
    and the zeros of its quantized weights as the mask.

    Raises:
        CheckpointError: when the file does not decode (see :func:`~.compressed.load_compressed`), records no
            checkpoint (then load it into a model with :func:`~.compressed.load_compressed_model`), or its
            weights do not fit the model.
    """
    loaded = load_compressed(path)
    record = loaded.metadata.get(RECORD_KEY)
    if not isinstance(record, dict) or not isinstance(record.get(CONFIG_FILE), str):
        raise CheckpointError(f"{loaded.path} records no checkpoint to rebuild its model from; load it into a model "
                              f"built as its source was: prunekit.deploy.compressed.load_compressed_model(path, model)")
    files = {name: text.encode() for name, text in record.items() if isinstance(text, str)}
    files[WEIGHTS_FILE] = safetensors.torch.save({k: v.contiguous() for k, v in loaded.state_dict.items()})
    masks = {name: q.dense() != 0 for name, q in loaded.quantized.items()}
    if masks:
        files[MASK_FILE] = safetensors.torch.save(masks)
    return load_checkpoint_files(Snapshot(loaded.path, files), model, model_source)


def lossless_codes(model: nn.Module, max_bits: int = 8) -> dict[str, QuantizedWeight]:
    """The weights of ``model``'s prunable layers whose non-zero values take at most ``2^max_bits`` distinct
    values, as shared codes of exactly those values (the smallest bit width that holds them)."""
    quantized = {}
    for name, module in prunable_layers(model):
        weight = module.weight.detach().cpu().to(torch.float32)
        flat = weight.reshape(-1)
        positions = torch.nonzero(flat, as_tuple=True)[0]
        if positions.numel() == 0:
            continue
        table, codes = torch.unique(flat[positions], sorted=True, return_inverse=True)
        if table.numel() > 2 ** max_bits:
            continue
        bits = max(1, math.ceil(math.log2(table.numel())))
        table = torch.cat([table, table[-1:].expand(2 ** bits - table.numel())])
        key = f"{name}.weight" if name else "weight"
        quantized[key] = QuantizedWeight(key, tuple(weight.shape), "shared", bits, positions, codes.to(torch.int64),
                                         table.contiguous())
    return quantized


def export_checkpoint_compressed(ckpt: Checkpoint, path: str | os.PathLike, *,
                                 quantized: Optional[Mapping[str, QuantizedWeight]] = None,
                                 metadata: Optional[Mapping[str, Any]] = None,
                                 metrics: Optional[Mapping[str, Any]] = None) -> CompressedExport:
    """Write ``ckpt``'s model as a compressed file that loads back as a checkpoint
    (:func:`load_compressed_checkpoint`): ``quantized`` codes (default: :func:`lossless_codes`), the other
    tensors as they are, the checkpoint's files recorded."""
    codes = lossless_codes(ckpt.model) if quantized is None else dict(quantized)
    meta = {**dict(metadata or {}), RECORD_KEY: checkpoint_record(ckpt, metrics)}
    return export_compressed(ckpt.model, codes, path, metadata=meta)
