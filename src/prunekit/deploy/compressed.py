"""The compressed file (``prunekit export --format compressed``): Deep Compression's storage of a pruned,
quantized model in one file that decodes back to the same model bit for bit.

Each quantized weight (:class:`~prunekit.quantize.QuantizedWeight`) is stored as

* its table: the shared weights' fp32 centroids, or the per-channel fp32 scales;
* its codes, one per non-zero weight, entropy-coded (:mod:`.entropy`);
* the positions of the non-zero weights as relative index gaps (Han et al. 2016, section 4): a gap
  longer than the cap is split with filler symbols; the cap (16 to 256) is chosen per tensor for the
  fewest bytes; the gap symbols are entropy-coded too.

Everything else in the ``state_dict`` (biases, normalisation, unquantized layers) is one safetensors
blob, as it is. The layout::

    b"PRUNEKZ\\0" | format version (u32 LE) | header length (u32 LE) | header (deflated JSON) | payload | SHA-256

The digest covers every byte before it: a truncated or corrupted file is refused, naming it; a file of
a newer format version is refused before anything is decoded. The file is written atomically.

Example:
    >>> import tempfile, torch
    >>> from torch import nn
    >>> from prunekit.prune import prune_model
    >>> from prunekit.quantize import share_weights
    >>> model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    >>> _ = prune_model(model, "weight", 90.0)
    >>> quantized = share_weights(model, 4, layers=["0"]).freeze()
    >>> info = export_compressed(model, quantized, tempfile.mkdtemp() + "/m.pkz")
    >>> info.file_bytes == info.path.stat().st_size and info.ratio > 3
    True
    >>> state = load_compressed(info.path).state_dict
    >>> all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    True
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import safetensors.torch
import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from ..quantize import QuantizedWeight
from ..storage import atomic_write_bytes, check_state_dict_fits, tensors_from_bytes
from .entropy import GAP_CAPS, Coded, best_gaps, decode, encode, positions_from_gaps

MAGIC = b"PRUNEKZ\0"
FORMAT_VERSION = 1
"""The newest format this code writes and reads; a file of a higher version is refused."""
_DIGEST = 32
_FIXED = len(MAGIC) + 8


@dataclass(frozen=True)
class TensorBytes:
    """What one quantized weight takes in the file: its table, codes and positions, in bytes."""

    name: str
    shape: tuple[int, ...]
    kind: str
    bits: int
    nonzeros: int
    table_bytes: int
    code_bytes: int
    position_bytes: int
    gap_cap: int
    gap_symbols: int

    @property
    def nbytes(self) -> int:
        return self.table_bytes + self.code_bytes + self.position_bytes

    @property
    def dense_bytes(self) -> int:
        return 4 * math.prod(self.shape)


@dataclass(frozen=True)
class CompressedExport:
    """A written compressed file: its path and size, the fp32 size of the same state (``dense_bytes``), the
    bytes of each quantized weight, of the raw tensors and of the header."""

    path: Path
    file_bytes: int
    dense_bytes: int
    tensors: list[TensorBytes]
    raw_bytes: int
    header_bytes: int

    @property
    def ratio(self) -> float:
        """How many times smaller than the fp32 state."""
        return self.dense_bytes / self.file_bytes

    def fixed_width_bytes(self) -> int:
        """What the same file would take without entropy coding: every code in ``bits`` bits and every gap
        symbol in ``log2(cap)`` bits (Han et al. 2016's size after quantization, before Huffman coding)."""
        coded = sum(t.table_bytes + math.ceil(t.nonzeros * t.bits / 8) + math.ceil(t.gap_symbols * math.log2(t.gap_cap) / 8)
                    for t in self.tensors)
        return _FIXED + self.header_bytes + coded + self.raw_bytes + _DIGEST

    def accounted_bytes(self) -> int:
        """The file's size from its parts (equals ``file_bytes``)."""
        return _FIXED + self.header_bytes + sum(t.nbytes for t in self.tensors) + self.raw_bytes + _DIGEST


@dataclass(frozen=True)
class CompressedFile:
    """A decoded compressed file: the ``state_dict`` it holds, the quantized weights and its metadata."""

    path: Path
    state_dict: dict[str, torch.Tensor]
    quantized: dict[str, QuantizedWeight]
    metadata: dict[str, Any] = field(default_factory=dict)


class _Payload:
    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, data: bytes) -> list[int]:
        span = [self.size, len(data)]
        self.parts.append(data)
        self.size += len(data)
        return span

    def add_coded(self, coded: Coded) -> dict[str, list[int]]:
        return {"counts": self.add(coded.counts), "words": self.add(coded.words)}


def export_compressed(model: nn.Module, quantized: Mapping[str, QuantizedWeight], path: str | os.PathLike, *,
                      metadata: Optional[Mapping[str, Any]] = None) -> CompressedExport:
    """Write ``model``'s state to ``path``: the weights named in ``quantized`` as codes, the rest as they are.

    Raises:
        ConfigError: when a quantized entry names no tensor of the model, or the model's tensor is not what
            its codes give (freeze shared weights, or load the quantized values, before exporting).
    """
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    aliases = tied_names(state)  # a tied tensor (an LM's output head) is stored once
    payload, entries, sizes = _Payload(), [], []
    for name, q in quantized.items():
        if name not in state:
            raise ConfigError(f"the quantized weight {name!r} is not a tensor of the model")
        q.check()
        if not torch.equal(q.dense(), state[name].to(torch.float32)):
            raise ConfigError(f"{name}: the model's weight is not what its codes give; export the model the codes "
                              f"were taken from (after SharedWeights.freeze())")
        positions = q.positions.numpy()
        cap, gaps = best_gaps(positions)
        table = payload.add(q.table.to(torch.float32).numpy().astype("<f4").tobytes())
        codes, places = encode(q.codes.numpy()), encode(gaps)
        entries.append({"name": name, "shape": list(q.shape), "kind": q.kind, "bits": q.bits,
                        "nonzeros": int(len(positions)), "table": table, "codes": payload.add_coded(codes),
                        "gaps": {"cap": cap, "symbols": int(len(gaps)), **payload.add_coded(places)}})
        sizes.append(TensorBytes(name, q.shape, q.kind, q.bits, len(positions), table[1], codes.nbytes,
                                 places.nbytes, cap, len(gaps)))
    raw = {k: v.contiguous().clone() for k, v in state.items() if k not in quantized and k not in aliases}
    raw_blob = safetensors.torch.save(raw) if raw else b""
    raw_span = payload.add(raw_blob)
    header = zlib.compress(json.dumps({"format": "prunekit-compressed", "format_version": FORMAT_VERSION,
                                       "quantized": entries, "raw": raw_span, "order": list(state),
                                       "aliases": aliases, "metadata": dict(metadata or {})}, sort_keys=True, separators=(",", ":")).encode(), 9)
    body = MAGIC + struct.pack("<II", FORMAT_VERSION, len(header)) + header + b"".join(payload.parts)
    data = body + hashlib.sha256(body).digest()
    path = Path(path)
    atomic_write_bytes(path, data)
    dense = sum(4 * v.numel() for k, v in state.items() if k not in aliases)
    return CompressedExport(path, len(data), dense, sizes, len(raw_blob), len(header))


def tied_names(state: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """``{name: first name}`` of the tensors of ``state`` that share another's memory, shape and strides (tied
    weights, e.g. a language model's output head and its input embedding).

    Example:
        >>> w = torch.ones(2, 3)
        >>> tied_names({"embed.weight": w, "head.weight": w, "bias": torch.zeros(2)})
        {'head.weight': 'embed.weight'}
    """
    first: dict[tuple, str] = {}
    aliases = {}
    for name, tensor in state.items():
        key = (tensor.data_ptr(), tuple(tensor.shape), tuple(tensor.stride()), tensor.dtype)
        if tensor.numel() and key in first:
            aliases[name] = first[key]
        else:
            first.setdefault(key, name)
    return aliases


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such compressed file") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None


def _span(data: bytes, base: int, span: Any, path: Path, what: str) -> bytes:
    if not (isinstance(span, list) and len(span) == 2 and all(isinstance(v, int) and v >= 0 for v in span)):
        raise CheckpointError(f"{path}: the header's {what} is not an [offset, length] pair")
    start, length = base + span[0], span[1]
    if start + length > len(data) - _DIGEST:
        raise CheckpointError(f"{path}: the {what} lies past the end of the payload")
    return data[start:start + length]


def load_compressed(path: str | os.PathLike) -> CompressedFile:
    """Decode a compressed file into its ``state_dict`` (and quantized weights, and metadata).

    Raises:
        CheckpointError: naming the file when it is not a prunekit compressed file, comes from a newer
            format version, is truncated or corrupted (its SHA-256 does not match), or does not decode.
    """
    path = Path(path)
    data = _read(path)
    if data[:len(MAGIC)] != MAGIC:
        raise CheckpointError(f"{path} is not a prunekit compressed file (it does not start with {MAGIC!r})")
    if len(data) < _FIXED + _DIGEST:
        raise CheckpointError(f"{path} is truncated ({len(data)} bytes)")
    version, header_length = struct.unpack("<II", data[len(MAGIC):_FIXED])
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written in compressed format version {version}; this prunekit reads "
                              f"versions up to {FORMAT_VERSION}: upgrade prunekit to read it")
    if hashlib.sha256(data[:-_DIGEST]).digest() != data[-_DIGEST:]:
        raise CheckpointError(f"{path} is truncated or corrupted (its SHA-256 checksum does not match)")
    try:
        header = json.loads(zlib.decompress(data[_FIXED:_FIXED + header_length]))
        base = _FIXED + header_length
        quantized = {e["name"]: _decode_weight(data, base, e, path) for e in header["quantized"]}
        raw_blob = _span(data, base, header["raw"], path, "raw tensors")
        order, metadata, aliases = header["order"], header["metadata"], header.get("aliases", {})
    except (KeyError, TypeError, ValueError, zlib.error) as exc:
        raise CheckpointError(f"{path}: its header is not a compressed file's header ({type(exc).__name__}: "
                              f"{exc})") from None
    raw = tensors_from_bytes(raw_blob, path, what="compressed file's raw tensors") if raw_blob else {}
    state = {**raw, **{name: q.dense() for name, q in quantized.items()}}
    if not isinstance(aliases, dict) or any(not isinstance(v, str) or v not in state for v in aliases.values()):
        raise CheckpointError(f"{path}: its header names tied tensors that it does not hold")
    state.update({alias: state[original] for alias, original in aliases.items()})
    if set(state) != set(order):
        raise CheckpointError(f"{path}: its tensors do not match the names its header lists")
    return CompressedFile(path, {k: state[k] for k in order}, quantized, metadata)


def _decode_weight(data: bytes, base: int, entry: dict, path: Path) -> QuantizedWeight:
    name = entry["name"]

    def coded(part: dict, what: str) -> Coded:
        return Coded(_span(data, base, part["counts"], path, f"{name} {what} counts"),
                     _span(data, base, part["words"], path, f"{name} {what}"))

    nonzeros, gaps = entry["nonzeros"], entry["gaps"]
    cap = gaps["cap"]
    if cap not in GAP_CAPS:
        raise CheckpointError(f"{path}: {name} has a gap cap of {cap}; expected one of {GAP_CAPS}")
    positions = positions_from_gaps(decode(coded(gaps, "positions"), gaps["symbols"]), cap)
    codes = decode(coded(entry["codes"], "codes"), nonzeros)
    table = np.frombuffer(_span(data, base, entry["table"], path, f"{name} table"), dtype="<f4").copy()
    if len(positions) != nonzeros:
        raise CheckpointError(f"{path}: {name} decodes to {len(positions)} positions, not {nonzeros}")
    try:
        return QuantizedWeight(name, tuple(entry["shape"]), entry["kind"], entry["bits"], torch.from_numpy(positions),
                               torch.from_numpy(codes), torch.from_numpy(table)).check()
    except ConfigError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


def load_compressed_model(path: str | os.PathLike, model: nn.Module) -> nn.Module:
    """Load a compressed file's weights into ``model`` (built as the file's model was) and return it.

    Raises:
        CheckpointError: when the file does not decode, or its tensors do not fit the model's.
    """
    loaded = load_compressed(path)
    check_state_dict_fits(model.state_dict(), loaded.state_dict, loaded.path)
    model.load_state_dict(loaded.state_dict)
    return model
