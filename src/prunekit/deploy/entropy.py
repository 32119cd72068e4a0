"""Entropy coding of integer symbols with an ANS coder (the ``constriction`` library) and a static model:
the symbols' counts are stored beside the coded words, so the decoder rebuilds the same model. Sparse
positions become symbols as relative index gaps (Han et al. 2016, section 4): a gap longer than the cap
is split with filler symbols; the cap (16 to 256) is chosen per tensor for the fewest bytes.

Counts are written as LEB128 varints (small counts take one byte); the probabilities both sides
use are the counts divided by their sum, quantized by constriction the same way on both sides.

Example:
    >>> import numpy as np
    >>> symbols = np.array([0, 0, 0, 1, 2, 0, 0, 1], dtype=np.int64)
    >>> coded = encode(symbols)
    >>> decode(coded, len(symbols)).tolist()
    [0, 0, 0, 1, 2, 0, 0, 1]
"""

from __future__ import annotations

from dataclasses import dataclass

import constriction
import numpy as np

from ..errors import CheckpointError, ConfigError


@dataclass(frozen=True)
class Coded:
    """Coded symbols: ``counts`` (LEB128 varints, one per symbol of the alphabet) and ``words`` (the ANS
    coder's 32-bit words, little-endian)."""

    counts: bytes
    words: bytes

    @property
    def nbytes(self) -> int:
        return len(self.counts) + len(self.words)


def varints(values: np.ndarray) -> bytes:
    """Non-negative integers as LEB128 varints."""
    out = bytearray()
    for value in values.tolist():
        while True:
            byte, value = value & 0x7F, value >> 7
            out.append(byte | (0x80 if value else 0))
            if not value:
                break
    return bytes(out)


def read_varints(data: bytes) -> np.ndarray:
    """The integers of a LEB128 varint stream."""
    values, value, shift = [], 0, 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            values.append(value)
            value, shift = 0, 0
    if shift:
        raise CheckpointError("a varint stream ends in the middle of a number")
    return np.array(values, dtype=np.int64)


def _model(counts: np.ndarray):
    probabilities = counts.astype(np.float64) / counts.sum()
    return constriction.stream.model.Categorical(probabilities, perfect=False)


def encode(symbols: np.ndarray) -> Coded:
    """Code the integers ``symbols`` (``>= 0``) with a static model of their own counts."""
    symbols = np.asarray(symbols, dtype=np.int64)
    if symbols.size == 0:
        return Coded(b"", b"")
    if symbols.min() < 0:
        raise ConfigError("entropy coding takes non-negative symbols")
    counts = np.bincount(symbols)
    if np.count_nonzero(counts) == 1:  # one symbol only: its count says everything
        return Coded(varints(counts), b"")
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(symbols.astype(np.int32), _model(counts))
    return Coded(varints(counts), coder.get_compressed().astype("<u4").tobytes())


def decode(coded: Coded, length: int) -> np.ndarray:
    """The ``length`` symbols ``coded`` holds.

    Raises:
        CheckpointError: when the counts and the length disagree or the words do not decode.
    """
    if length == 0:
        return np.zeros(0, dtype=np.int64)
    counts = read_varints(coded.counts)
    if counts.sum() != length:
        raise CheckpointError(f"the symbol counts add up to {int(counts.sum())}, not the {length} symbols expected")
    used = np.flatnonzero(counts)
    if used.size == 1:
        return np.full(length, used[0], dtype=np.int64)
    if len(coded.words) % 4:
        raise CheckpointError("the coded words are not a whole number of 32-bit words")
    words = np.frombuffer(coded.words, dtype="<u4").astype(np.uint32)
    try:
        symbols = constriction.stream.stack.AnsCoder(words).decode(_model(counts), length)
    except Exception as exc:  # constriction reports a broken stream as its own error types
        raise CheckpointError(f"the coded words do not decode ({type(exc).__name__}: {exc})") from None
    return symbols.astype(np.int64)


GAP_CAPS = (16, 32, 64, 128, 256)
"""Gap alphabets tried per tensor; the last symbol of each is the filler (skip that many zeros)."""


def gap_symbols(positions: np.ndarray, cap: int) -> np.ndarray:
    """Sorted flat positions as gap symbols: ``g`` in ``[0, cap-1)`` means the next position lies ``g+1``
    after the previous one; ``cap-1`` (the filler) skips ``cap-1`` zeros and places nothing."""
    filler = cap - 1
    gaps = np.diff(positions, prepend=-1) - 1
    fills, rest = np.divmod(gaps, filler)
    out = np.full(int(fills.sum()) + len(gaps), filler, dtype=np.int64)
    out[np.cumsum(fills + 1) - 1] = rest
    return out


def positions_from_gaps(symbols: np.ndarray, cap: int) -> np.ndarray:
    """The positions :func:`gap_symbols` coded."""
    filler = cap - 1
    steps = np.where(symbols == filler, filler, symbols + 1)
    return (np.cumsum(steps) - 1)[symbols != filler]


def estimated_bytes(symbols: np.ndarray) -> float:
    """The bytes ``symbols`` take entropy-coded with a model of their own counts (the counts included, about
    1.5 bytes each)."""
    counts = np.bincount(symbols)
    counts = counts[counts > 0]
    bits = float(-(counts * np.log2(counts / counts.sum())).sum())
    return bits / 8 + len(counts) * 1.5


def best_gaps(positions: np.ndarray) -> tuple[int, np.ndarray]:
    """``(cap, gap symbols)`` of the sorted flat ``positions`` with the cap of :data:`GAP_CAPS` whose symbols
    code smallest (by their empirical entropy)."""
    candidates = [(cap, gap_symbols(positions, cap)) for cap in GAP_CAPS]
    return min(candidates, key=lambda c: estimated_bytes(c[1]) if len(c[1]) else 0.0)
