"""Reading and writing IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number ``0x0000TTNN`` (``TT`` the element type,
``0x08`` for unsigned bytes; ``NN`` the number of dimensions), then ``NN``
big-endian uint32 dimension sizes, then the elements in C order. Only the two
kinds MNIST uses are accepted: ``0x00000801`` (uint8 labels, 1-D) and
``0x00000803`` (uint8 images, 3-D).
"""

from __future__ import annotations

import gzip
import hashlib
import math
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np

from prunekit.errors import ChecksumError, DataError
from prunekit.storage.reading import read_bytes

UINT8_TYPE = 0x08
SUPPORTED_NDIM = (1, 3)
_TYPE_NAMES = {0x08: "uint8", 0x09: "int8", 0x0B: "int16", 0x0C: "int32",
               0x0D: "float32", 0x0E: "float64"}
_EXPECTED_MAGIC = "0x00000801 (uint8 labels, 1-D) or 0x00000803 (uint8 images, 3-D)"


def parse_idx(data: bytes, *, source: str) -> np.ndarray:
    """Parse the bytes of a (decompressed) IDX file into a uint8 array.

    Args:
        data: the whole decompressed file content.
        source: the file's name or path, used in error messages.

    Returns:
        A read-only ``numpy.ndarray`` of dtype uint8 viewing ``data``, with the
        shape the header announces (1-D for labels, 3-D for images).

    Raises:
        DataError: bad magic number, unsupported element type or dimension
            count, or a data length that does not match the header (truncated
            file or trailing bytes). The message names ``source``.

    Example:
        >>> import numpy as np
        >>> parse_idx(write_idx(np.arange(3, dtype=np.uint8)), source="x").tolist()
        [0, 1, 2]
    """
    ndim = _check_magic(data, source)
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{source}: truncated IDX header: {len(data)} bytes, expected at "
                        f"least {header} (magic number and {ndim} dimension sizes)")
    dims = struct.unpack_from(f">{ndim}I", data, 4)
    expected, actual = math.prod(dims), len(data) - header
    shape = "x".join(map(str, dims))
    if actual < expected:
        raise DataError(f"{source}: truncated IDX file: the header announces {shape} = "
                        f"{expected} bytes of data, but only {actual} follow")
    if actual > expected:
        raise DataError(f"{source}: {actual - expected} trailing bytes after the IDX data: "
                        f"the header announces {shape} = {expected} bytes, the file has {actual}")
    return np.frombuffer(data, dtype=np.uint8, count=expected, offset=header).reshape(dims)


def _check_magic(data: bytes, source: str) -> int:
    """Validate the 4-byte magic number; return the number of dimensions."""
    if len(data) < 4:
        raise DataError(f"{source}: only {len(data)} bytes, too short for an IDX file "
                        f"(expected a 4-byte magic number {_EXPECTED_MAGIC})")
    magic = int.from_bytes(data[:4], "big")
    dtype, ndim = data[2], data[3]
    if data[0] != 0 or data[1] != 0:
        raise DataError(f"{source}: bad IDX magic number 0x{magic:08X}, expected "
                        f"{_EXPECTED_MAGIC}; this is not an MNIST-format IDX file")
    if dtype != UINT8_TYPE:
        name = _TYPE_NAMES.get(dtype, "unknown type")
        raise DataError(f"{source}: IDX element type 0x{dtype:02X} ({name}) is not supported, "
                        f"expected 0x08 (uint8); magic 0x{magic:08X}, expected {_EXPECTED_MAGIC}")
    if ndim not in SUPPORTED_NDIM:
        raise DataError(f"{source}: IDX file with {ndim} dimensions (magic 0x{magic:08X}) is not "
                        f"supported, expected {_EXPECTED_MAGIC}")
    return ndim


def write_idx(array: np.ndarray) -> bytes:
    """Encode a uint8 array (1-D or 3-D) as the bytes of an IDX file.

    Args:
        array: a uint8 array of 1 or 3 dimensions (anything ``numpy.asarray`` takes).

    Returns:
        The IDX bytes (not compressed); ``gzip.compress`` them for a ``.gz`` file.

    Raises:
        ValueError: the array is not uint8 or not 1-D / 3-D.

    Example:
        >>> write_idx(np.zeros((2, 28, 28), dtype=np.uint8))[:4].hex()
        '00000803'
    """
    arr = np.asarray(array)
    if arr.dtype != np.uint8 or arr.ndim not in SUPPORTED_NDIM:
        raise ValueError(f"write_idx needs a uint8 array of 1 or 3 dimensions, "
                         f"got {arr.dtype} with shape {arr.shape}")
    header = bytes([0, 0, UINT8_TYPE, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + np.ascontiguousarray(arr).tobytes()


def read_maybe_gzip(path: Path) -> tuple[bytes, bytes]:
    """Read a whole file, decompressing it when its name ends in ``.gz``.

    Args:
        path: the file to read.

    Returns:
        ``(stored, content)``: the bytes as stored on disk and the decompressed
        content (the same object for a file that is not gzip-compressed).

    Raises:
        DataError: a file that cannot be read, or a ``.gz`` file that is corrupt,
            truncated or not gzip at all.
    """
    path = Path(path)
    stored = read_bytes(path, "a data file")
    if path.suffix != ".gz":
        return stored, stored
    try:
        return stored, _gunzip(stored)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(
            f"{path}: cannot decompress this gzip file ({err}); it is corrupt or truncated. "
            f"Delete it and run again to download it again, or put the right file there "
            f"(or its decompressed version, named {path.stem})") from err


def read_checked(path: Path, *, sha256: str | None = None, gz_md5: str | None = None, what: str = "file",
                 source: str | None = None) -> bytes:
    """Read a (possibly gzipped) file and verify it; return the decompressed content.

    Args:
        path: the file; a name ending in ``.gz`` is decompressed.
        sha256: expected sha256 of the decompressed content (the check used whenever it is known).
        gz_md5: where no such digest is published (KMNIST): the md5 of the canonical ``.gz`` archive,
            checked when the file is that archive; a decompressed file is then only checked for
            structure, with a warning.
        what: describes the file in messages, e.g. ``"mnist file train-images-idx3-ubyte"``.
        source: where the file came from, named in messages instead of ``path`` (the URL of
            a download being checked in a temporary file).

    Returns:
        The decompressed bytes.

    Raises:
        ChecksumError: digest mismatch; names the file, expected and actual digests.
        DataError: an unreadable or corrupt gzip file.
    """
    try:
        stored, content = read_maybe_gzip(path)
    except DataError as err:
        if source is None:
            raise
        raise DataError(f"download from {source} is not a valid gzip file ({err.__cause__ or err}); "
                        f"rejected") from None
    if sha256:
        kind, expected, actual = "the sha256 of the decompressed content", sha256, hashlib.sha256(content).hexdigest()
    elif gz_md5 and (source is not None or Path(path).suffix == ".gz"):
        kind, expected, actual = "the md5 of the .gz archive", gz_md5, \
            hashlib.md5(stored, usedforsecurity=False).hexdigest()
    else:
        warnings.warn(f"{path}: no checksum is published for the decompressed {what}, so only its structure is "
                      f"checked; keep the canonical .gz archive to have it verified", stacklevel=2)
        return content
    if actual != expected:
        where, advice = (f"download from {source}", "rejected") if source else (
            str(path), "delete it and run again to download it again, or replace it with the "
                       "right file (.gz or decompressed)")
        raise ChecksumError(f"{where}: {kind} is {actual}, expected {expected} for the {what}: "
                            f"the file is corrupt or not the right one; {advice}")
    return content


def _gunzip(stored: bytes) -> bytes:
    """Decompress gzip data; zlib on a single member is ~2x faster than gzip.decompress."""
    dec = zlib.decompressobj(wbits=31)
    content = dec.decompress(stored)
    if not dec.eof:
        raise EOFError("compressed data ended before the end-of-stream marker")
    if dec.unused_data:  # several gzip members (or garbage after one): let gzip decide
        return gzip.decompress(stored)
    return content


def check_split(images: np.ndarray, labels: np.ndarray, *, count: int,
                image_shape: tuple[int, int], num_classes: int,
                sources: tuple[str, str]) -> None:
    """Check one split's parsed arrays against the expected sizes.

    Args:
        images: parsed images, expected ``[count, *image_shape]``.
        labels: parsed labels, expected ``[count]`` with values in ``0..num_classes-1``.
        count: expected number of examples.
        image_shape: expected ``(height, width)``.
        num_classes: labels must be below this.
        sources: ``(images file, labels file)`` names for error messages.

    Raises:
        DataError: naming the file at fault, what it holds and what was expected.

    Example:
        >>> check_split(np.zeros((2, 28, 28), np.uint8), np.zeros(2, np.uint8), count=2,
        ...             image_shape=(28, 28), num_classes=10, sources=("i", "l"))
    """
    img_src, lab_src = sources
    if images.ndim != 3:
        raise DataError(f"{img_src}: holds a {images.ndim}-D IDX array of shape {images.shape}, expected images "
                        f"[N, H, W]: is it a labels file in the place of an images file?")
    if labels.ndim != 1:
        raise DataError(f"{lab_src}: holds a {labels.ndim}-D IDX array of shape {labels.shape}, expected labels "
                        f"[N]: is it an images file in the place of a labels file?")
    want = (count, *image_shape)
    if images.shape != want:
        raise DataError(f"{img_src}: holds images of shape {images.shape}, expected {want} "
                        f"(is this the right file for this dataset and split?)")
    if labels.shape[0] != count:
        raise DataError(f"{lab_src}: holds {labels.shape[0]} labels, expected {count} "
                        f"(one per image of {img_src})")
    if labels.size and int(labels.max()) >= num_classes:
        raise DataError(f"{lab_src}: label value {int(labels.max())} out of range, "
                        f"expected labels in 0..{num_classes - 1}")
