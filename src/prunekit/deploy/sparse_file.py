"""Compressed model files: every tensor stored with only its non-zeros (no pickles).

One safetensors file holds each tensor's component arrays (``"<name>/values"``,
``"<name>/indices"``, ...) and, in the header metadata, JSON describing each tensor (its
encoding, shape and dtype) and, when the model is an ``nn.Sequential`` of standard layers,
its architecture (so :func:`load_sparse_model` rebuilds it). Per tensor the smallest of dense,
CSR, CSR with 8-bit relative indices and bitmask + values is kept (see
:mod:`prunekit.sparse_format`); with ``fp16=True`` floating-point values are stored as fp16.

Example:
    >>> from prunekit.prune import prune_model
    >>> import tempfile
    >>> from prunekit.models import get_model
    >>> from prunekit.prune import prune_model
    >>> path = tempfile.mkdtemp() + "/mlp-w95.sparse.safetensors"
    >>> model = get_model("mlp", seed=0); _ = prune_model(model, "weight", 95.0)
    >>> info = export_sparse(model, path)
    >>> round(info.ratio)  # 95% of the hidden layers' weights are zero; the output layer is whole
    16
    >>> model.load_state_dict(load_sparse(path))
    <All keys matched successfully>
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Union

import numpy as np
import safetensors.numpy
import safetensors.torch
import torch
from torch import nn

from ..compact.architecture import architecture_to_json, model_from_architecture
from ..errors import CheckpointError, ConfigError
from ..models.memory import available_memory_bytes
from ..prune.mask import as_mask
from ..storage import atomic_write_bytes, check_state_dict_fits
from .sparse_format import decode, encode, nbytes

SPARSE_FORMAT, SPARSE_VERSION = "prunekit.sparse", "1"
FP16_MAX = float(np.finfo(np.float16).max)
DTYPES: dict[str, torch.dtype] = {str(t).removeprefix("torch."): t for t in (
    torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.complex64, torch.complex128,
    torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool)}
"""The dtypes a sparse file may name, by name (a file never names an arbitrary ``torch`` attribute)."""


@dataclass(frozen=True)
class TensorEntry:
    """How one tensor was stored: encoding, shape, dtypes, stored bytes and dense fp32-style bytes."""

    name: str
    encoding: str
    shape: tuple[int, ...]
    dtype: str
    stored_dtype: str
    nbytes: int
    dense_nbytes: int


@dataclass(frozen=True)
class SparseExport:
    """What :func:`export_sparse` wrote (``path`` is ``None`` for :func:`sparse_file_bytes`)."""

    path: Optional[Path]
    file_bytes: int
    dense_file_bytes: int
    tensors: tuple[TensorEntry, ...]

    @property
    def ratio(self) -> float:
        """How many times smaller than the dense safetensors file of the same tensors."""
        return self.dense_file_bytes / self.file_bytes


def export_sparse(
    model: Union[nn.Module, Mapping[str, torch.Tensor]],
    path: Union[str, os.PathLike],
    *,
    fp16: bool = False,
    mask: Optional[Mapping[str, torch.Tensor]] = None,
) -> SparseExport:
    """Write ``model``'s state dict as a compressed safetensors file.

    Args:
        model: a model (its ``state_dict()``) or a state dict.
        path: the file to write (replaced atomically).
        fp16: store floating-point values as fp16 (lossy; a value beyond fp16's range keeps its
            tensor in its own dtype).
        mask: optional mask, applied to a copy of the model first.

    Returns:
        A :class:`SparseExport` with the file size and the dense fp32 safetensors size.

    Example:
        >>> import tempfile
        >>> export_sparse(nn.Linear(4, 2), tempfile.mkdtemp() + "/tiny.safetensors").tensors[0].encoding
        'dense'
    """
    data, info = _serialise(model, fp16, mask)
    atomic_write_bytes(path, data)
    return SparseExport(Path(path), len(data), info[0], info[1])


def sparse_file_bytes(model, *, fp16: bool = False, mask=None) -> SparseExport:
    """Like :func:`export_sparse` but writes nothing: the sizes the file would have."""
    data, info = _serialise(model, fp16, mask)
    return SparseExport(None, len(data), info[0], info[1])


def _serialise(model, fp16: bool, mask) -> tuple[bytes, tuple[int, tuple[TensorEntry, ...]]]:
    state = _state(model, mask)
    arrays, meta, entries = {}, {}, []
    for name, tensor in state.items():
        array, stored = _to_numpy(tensor, fp16)
        kind, parts = encode(array)
        arrays.update({f"{name}/{part}": a for part, a in parts.items()})
        dtype = str(tensor.dtype).removeprefix("torch.")
        meta[name] = {"encoding": kind, "shape": list(tensor.shape), "dtype": dtype}
        entries.append(TensorEntry(name, kind, tuple(tensor.shape), dtype, stored, nbytes(parts),
                                   tensor.numel() * tensor.element_size()))
    metadata = {"format": SPARSE_FORMAT, "version": SPARSE_VERSION, "tensors": json.dumps(meta)}
    try:
        metadata["architecture"] = json.dumps(architecture_to_json(model))
    except ConfigError:
        pass  # not an nn.Sequential of standard layers: the file still holds the state dict
    dense = len(safetensors.torch.save({k: v.contiguous() for k, v in state.items()}))
    return safetensors.numpy.save(arrays, metadata=metadata), (dense, tuple(entries))


def _state(model, mask) -> dict[str, torch.Tensor]:
    if isinstance(model, nn.Module):
        if mask is not None:
            model = copy.deepcopy(model)
            as_mask(mask).apply_(model)
        model = model.state_dict()
    elif mask is not None:
        raise ConfigError("mask= needs a model, not a state dict")
    return {k: v.detach().cpu() for k, v in model.items()}


def _to_numpy(tensor: torch.Tensor, fp16: bool) -> tuple[np.ndarray, str]:
    if tensor.is_floating_point():
        t = tensor.float() if tensor.dtype == torch.bfloat16 else tensor
        if fp16 and (t.numel() == 0 or t.abs().max().item() <= FP16_MAX):
            t = t.half()
        return t.contiguous().numpy(), str(t.dtype).removeprefix("torch.")
    return tensor.contiguous().numpy(), str(tensor.dtype).removeprefix("torch.")


def _check_shape(path, name: str, info) -> None:
    if not isinstance(info, dict) or not isinstance(info.get("shape"), list) or \
            not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in info["shape"]):
        raise CheckpointError(f"{path}: tensor {name!r} has no valid shape in the metadata")
    numel = int(np.prod(info["shape"], dtype=np.float64))
    have = available_memory_bytes()
    if have is not None and 8 * numel > have:
        raise CheckpointError(f"{path}: tensor {name!r} claims shape {info['shape']} ({numel:,} entries), more "
                              f"than this machine's memory; the file is corrupt")


def load_sparse(path: Union[str, os.PathLike]) -> dict[str, torch.Tensor]:
    """Read a file written by :func:`export_sparse` back into a dense state dict.

    Values come back in each tensor's original dtype (fp16-stored values are widened).

    Raises:
        CheckpointError: naming the file if it is missing, not safetensors, not a prunekit
            sparse file, or holds inconsistent arrays.

    """
    meta, arrays = _read(Path(path))
    try:
        tensors = json.loads(meta["tensors"])
    except (KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: the tensor table in the metadata is missing or malformed ({exc})") from None
    if not isinstance(tensors, dict):
        raise CheckpointError(f"{path}: the tensor table in the metadata must be a JSON object")
    state = {}
    for name, info in tensors.items():
        _check_shape(path, name, info)
        prefix = f"{name}/"
        parts = {k[len(prefix):]: a for k, a in arrays.items() if k.startswith(prefix)}
        dtype = _dtype(path, name, info.get("dtype"))
        try:
            np_dtype = "float32" if dtype == torch.bfloat16 else info["dtype"]
            array = decode(info["encoding"], parts, tuple(info["shape"]), np_dtype)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, MemoryError) as exc:
            raise CheckpointError(f"{path}: tensor {name!r} is corrupt or incomplete ({exc!r})") from None
        state[name] = torch.from_numpy(np.ascontiguousarray(array)).to(dtype)
    return state


def _dtype(path, name: str, dtype_name) -> torch.dtype:
    """The dtype a tensor's metadata names, from :data:`DTYPES` only."""
    if not isinstance(dtype_name, str) or dtype_name not in DTYPES:
        raise CheckpointError(f"{path}: tensor {name!r} has unknown dtype {dtype_name!r}; expected one of "
                              f"{', '.join(DTYPES)}")
    return DTYPES[dtype_name]


def _read(path: Path) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; expected a prunekit sparse file")
    if not path.is_file():
        raise CheckpointError(f"sparse model file {path} does not exist")
    try:
        with safetensors.safe_open(str(path), "np") as f:
            meta = f.metadata() or {}
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises several error types for corrupt files
        raise CheckpointError(f"{path} is not a readable safetensors file ({exc})") from None
    if meta.get("format") != SPARSE_FORMAT:
        raise CheckpointError(f"{path} is not a prunekit sparse file: metadata format is "
                              f"{meta.get('format')!r}, expected {SPARSE_FORMAT!r}")
    if meta.get("version") != SPARSE_VERSION:
        raise CheckpointError(f"{path}: sparse format version {meta.get('version')!r} is not supported")
    return meta, arrays


def load_sparse_model(path: Union[str, os.PathLike]) -> nn.Sequential:
    """Rebuild the model from a sparse file that holds its architecture (eval mode).

    Raises:
        CheckpointError: if the file has no architecture (the model was not an ``nn.Sequential``
            of standard layers: load its state dict with :func:`load_sparse` instead).
    """
    meta, _ = _read(Path(path))
    if "architecture" not in meta:
        raise CheckpointError(f"{path} holds no architecture; use load_sparse() and your own model")
    try:
        model = model_from_architecture(json.loads(meta["architecture"]))
    except (ConfigError, json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{path}: bad architecture ({exc})") from None
    state = load_sparse(path)
    check_state_dict_fits(model.state_dict(), state, path)
    model.load_state_dict(state)
    return model.eval()
