"""Encodings of one tensor that store only its non-zeros, and their exact sizes.

A tensor is viewed as a matrix ``[rows, cols]`` (``rows = shape[0]``, a 1-D tensor is one row).
Four encodings, each a dict of numpy arrays (index dtypes are the smallest that fit:
uint8, uint16, int32, then int64):

* ``dense``: ``data`` (the tensor itself);
* ``csr``: ``values``, column ``indices``, row pointers ``indptr`` (compressed sparse rows);
* ``csr_rel``: CSR whose column indices are 8-bit *gaps* from the previous non-zero of the row
  (the relative indexing of Han et al. 2016, "Deep Compression"); a gap over 255 is bridged by
  an explicit zero filler entry, so every index fits in one byte;
* ``nm``: for a tensor that holds an N:M pattern (at most N non-zeros in every M consecutive entries of
  a row, M in 4, 8, 16): N ``values`` per group and their positions in the group, packed in
  ``ceil(log2 M)`` bits each (2 bits for 2:4, the layout of sparse tensor cores' metadata); the
  encoding's name carries the pattern, e.g. ``nm:2:4``;
* ``bitmask``: ``bits`` (one bit per entry, ``numpy.packbits``) and the non-zero ``values``.

:func:`encode` keeps the smallest (ties go to the earlier one in :data:`ENCODINGS`).

Example:
    >>> w = np.zeros((4, 300), np.float32); w[0, 7] = 1.5
    >>> kind, arrays = encode(w)
    >>> kind, {k: a.dtype.name for k, a in arrays.items()}
    ('csr_rel', {'values': 'float32', 'gaps': 'uint8', 'indptr': 'uint8'})
    >>> np.array_equal(decode(kind, arrays, w.shape, "float32"), w)
    True
"""

from __future__ import annotations

from typing import Callable

import numpy as np

ENCODINGS = ("dense", "csr", "csr_rel", "nm", "bitmask")
Arrays = dict[str, np.ndarray]


def index_dtype(max_value: int) -> np.dtype:
    """The smallest of uint8, uint16, int32, int64 that holds ``0 .. max_value``."""
    for dtype in (np.uint8, np.uint16, np.int32):
        if max_value <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


def as_matrix(array: np.ndarray) -> np.ndarray:
    """The ``[rows, cols]`` view used by the sparse encodings."""
    rows = array.shape[0] if array.ndim >= 2 else 1
    return array.reshape(rows, -1)


def encode_dense(array: np.ndarray) -> Arrays:
    return {"data": np.ascontiguousarray(array)}


def encode_csr(array: np.ndarray) -> Arrays:
    m = as_matrix(array)
    rows, cols = np.nonzero(m)
    indptr = np.zeros(m.shape[0] + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=m.shape[0]), out=indptr[1:])
    return {"values": m[rows, cols], "indices": cols.astype(index_dtype(max(m.shape[1] - 1, 0))),
            "indptr": indptr.astype(index_dtype(int(indptr[-1])))}


def encode_csr_rel(array: np.ndarray) -> Arrays:
    m = as_matrix(array)
    rows, cols = np.nonzero(m)
    first = np.ones(len(rows), bool)
    first[1:] = rows[1:] != rows[:-1]
    previous = np.where(first, -1, np.concatenate([[-1], cols[:-1]]))
    skip = cols - previous - 1                      # zeros skipped before this non-zero
    fillers = skip // 256                           # each filler advances 256 columns
    slot = np.cumsum(fillers + 1) - 1               # where each real entry lands
    gaps = np.full(int(slot[-1]) + 1 if len(slot) else 0, 255, np.uint8)
    values = np.zeros(len(gaps), m.dtype)
    gaps[slot] = skip - 256 * fillers
    values[slot] = m[rows, cols]
    counts = np.bincount(rows, weights=fillers + 1, minlength=m.shape[0]).astype(np.int64)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    return {"values": values, "gaps": gaps, "indptr": indptr.astype(index_dtype(int(indptr[-1])))}


def encode_bitmask(array: np.ndarray) -> Arrays:
    flat = array.reshape(-1)
    keep = flat != 0
    return {"bits": np.packbits(keep), "values": flat[keep]}


def nm_pattern(array: np.ndarray, sizes: tuple[int, ...] = (4, 8, 16)) -> tuple[int, int] | None:
    """The tightest ``(n, m)`` with ``n < m`` that ``array``'s rows follow (smallest ``n / m``, then ``m``), or ``None``."""
    m_all = as_matrix(array)
    best = None
    for m in sizes:
        if m_all.shape[1] % m or m_all.size == 0:
            continue
        n = max(int((m_all.reshape(-1, m) != 0).sum(axis=1).max()), 1)
        if n < m and (best is None or n / m < best[0] / best[1]):
            best = (n, m)
    return best


def encode_nm(array: np.ndarray, pattern: tuple[int, int]) -> Arrays:
    n, m = pattern
    groups = as_matrix(array).reshape(-1, m)
    # the non-zeros of each group first, then zeros to fill n slots; positions ascending
    slots = np.sort(np.argsort(groups == 0, axis=1, kind="stable")[:, :n], axis=1)
    bits = int(np.ceil(np.log2(m)))
    index_bits = (slots.reshape(-1, 1) >> np.arange(bits)) & 1
    return {"values": np.take_along_axis(groups, slots, axis=1).reshape(-1),
            "positions": np.packbits(index_bits.astype(np.uint8).reshape(-1))}


ENCODERS: dict[str, Callable[[np.ndarray], Arrays]] = {
    "dense": encode_dense, "csr": encode_csr, "csr_rel": encode_csr_rel, "bitmask": encode_bitmask,
}


def nbytes(arrays: Arrays) -> int:
    """Bytes of the arrays' data (what a file stores, headers aside)."""
    return sum(a.nbytes for a in arrays.values())


def candidates(array: np.ndarray) -> dict[str, Arrays]:
    """Every encoding of ``array`` (only ``dense`` for 0-d, empty or non-float arrays)."""
    if array.ndim == 0 or array.size == 0 or array.dtype.kind != "f":
        return {"dense": encode_dense(array)}
    options = {name: fn(array) for name, fn in ENCODERS.items()}
    pattern = nm_pattern(array)
    if pattern is not None:
        options[f"nm:{pattern[0]}:{pattern[1]}"] = encode_nm(array, pattern)
    return options


def encode(array: np.ndarray) -> tuple[str, Arrays]:
    """The smallest encoding of ``array``: ``(name, arrays)``.

    Example:
        >>> encode(np.ones(3, np.float32))[0]
        'dense'
    """
    options = candidates(array)
    name = min(options, key=lambda k: (nbytes(options[k]), ENCODINGS.index(k.split(":")[0])))
    return name, options[name]


def decode(kind: str, arrays: Arrays, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Rebuild the dense array from :func:`encode`'s output (values cast to ``dtype``).

    Raises:
        ValueError: if the arrays are inconsistent (e.g. a corrupt file): wrong lengths,
            indices out of range, decreasing row pointers, or an unknown encoding.
    """
    numel = int(np.prod(shape, dtype=np.int64))
    if kind == "dense":
        data = arrays["data"]
        _expect(data.size == numel, f"dense data has {data.size} entries, shape {list(shape)} needs {numel}")
        return data.astype(dtype, copy=False).reshape(shape)
    out = np.zeros(numel, dtype)
    if kind == "bitmask":
        keep = np.unpackbits(arrays["bits"], count=numel).astype(bool)
        _expect(len(arrays["bits"]) == (numel + 7) // 8 and keep.sum() == len(arrays["values"]),
                "bitmask and values do not match")
        out[keep] = arrays["values"]
        return out.reshape(shape)
    if kind.startswith("nm:"):
        return _decode_nm(kind, arrays, shape, numel, out)
    if kind not in ("csr", "csr_rel"):
        raise ValueError(f"unknown encoding {kind!r}; known: {', '.join(ENCODINGS)}")
    rows = shape[0] if len(shape) >= 2 else 1
    cols = numel // rows if rows else 0
    indptr, values = arrays["indptr"].astype(np.int64), arrays["values"]
    _expect(len(indptr) == rows + 1 and indptr[0] == 0 and indptr[-1] == len(values)
            and bool(np.all(np.diff(indptr) >= 0)), "row pointers do not match the values")
    counts = np.diff(indptr)
    if kind == "csr":
        col = arrays["indices"].astype(np.int64)
    else:
        ends = np.cumsum(arrays["gaps"].astype(np.int64) + 1)
        starts = np.concatenate([[0], ends])[indptr[:-1]]
        col = ends - np.repeat(starts, counts) - 1
    _expect(len(col) == len(values) and (len(col) == 0 or (col.min() >= 0 and col.max() < cols)),
            "column indices out of range")
    out[np.repeat(np.arange(rows), counts) * cols + col] = values
    return out.reshape(shape)


def _decode_nm(kind: str, arrays: Arrays, shape: tuple[int, ...], numel: int, out: np.ndarray) -> np.ndarray:
    parts = kind.split(":")
    _expect(len(parts) == 3 and all(p.isdigit() for p in parts[1:]), f"unknown encoding {kind!r}")
    n, m = int(parts[1]), int(parts[2])
    _expect(0 < n < m and numel % m == 0, f"a {n}:{m} pattern does not fit shape {list(shape)}")
    count = numel // m * n
    bits = int(np.ceil(np.log2(m)))
    _expect(len(arrays["values"]) == count and len(arrays["positions"]) == (count * bits + 7) // 8,
            "N:M values and positions do not match the shape")
    flags = np.unpackbits(arrays["positions"], count=count * bits).reshape(count, bits).astype(np.int64)
    positions = (flags << np.arange(bits)).sum(axis=1).reshape(-1, n)
    _expect(bool(np.all(positions < m)), "N:M positions out of range")
    groups = out.reshape(-1, m)
    np.put_along_axis(groups, positions, arrays["values"].reshape(-1, n), axis=1)
    return out.reshape(shape)


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)
