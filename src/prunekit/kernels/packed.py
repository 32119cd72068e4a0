"""A pruned weight packed for prunekit's sparse kernels, and ``y = x W^T (+ b)`` with it.

Two forms (:data:`FORMATS`), each with fp32, fp16 or bf16 values, or int8 codes with one fp32 scale per row
(:data:`VALUE_TYPES`; all but fp32 round the weights, so they are chosen, never implied; int8 takes the codes
and scales, e.g. :func:`prunekit.quantize.uniform.pack_int8`'s):

* ``csr``: row offsets, one column index per non-zero (16-bit when the layer has at most 65,536 inputs, else
  32-bit), the values: ``nnz * (value + index)`` bytes;
* ``bitmask``: one bit per weight and the non-zero values in row order: ``numel / 8 + nnz * value`` bytes.
  An N:M pattern is packed in this form (:meth:`PackedWeight.pack` with ``pattern=``): one bit per weight is
  the size of 2:4's two 2-bit positions per four weights.

Example:
    >>> w = torch.tensor([[0.0, 2.0, 0.0, -1.0], [3.0, 0.0, 0.0, 0.0]])
    >>> packed = PackedWeight.pack(w, "csr")
    >>> packed.nnz, packed.nbytes
    (3, 42)
    >>> x = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 2.0, 3.0]])
    >>> packed.matmul(x).tolist()
    [[1.0, 3.0], [-1.0, 0.0]]
    >>> PackedWeight.pack(w, "bitmask").matmul(x, bias=torch.tensor([1.0, 1.0])).tolist()
    [[2.0, 4.0], [0.0, 1.0]]
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable, Optional

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError
from .compiled import module as compiled_module

FORMATS = ("csr", "bitmask")
VALUE_TYPES = {"fp32": (torch.float32, 0), "fp16": (torch.float16, 1), "bf16": (torch.bfloat16, 2),
               "int8": (torch.int8, 3)}
"""Stored value type: its torch dtype and the kernel's code for it."""
PAD = 8
"""Zero values stored after the last one: the kernels' vector loads may read them."""
SINGLE_THREAD_BYTES = 64 * 1024
"""Weights smaller than this run on one thread: waking the others costs more than it saves."""


@dataclass(frozen=True)
class PackedWeight:
    """A ``[rows, cols]`` weight in one of :data:`FORMATS` (numpy arrays the kernel reads in place)."""

    form: str
    shape: tuple[int, int]
    values_type: str
    offsets: np.ndarray          # int64 [rows + 1]: where each row's values start
    values: np.ndarray           # float32, uint16 (fp16/bf16 bits) or int8 [nnz + PAD]
    columns: Optional[np.ndarray] = None   # csr: uint16 or int32 [nnz]
    mask: Optional[np.ndarray] = None      # bitmask: uint8 [rows, ceil(cols / 8)]
    pattern: Optional[tuple[int, int]] = None
    scales: Optional[np.ndarray] = None    # int8 values: float32 [rows], a row's weight = code * scale

    def __post_init__(self):
        # the kernel's fixed arguments, computed once: a product of a small layer takes microseconds
        object.__setattr__(self, "_weight_args", (
            int(self.form == "bitmask"), self.offsets.ctypes.data,
            0 if self.columns is None else self.columns.ctypes.data,
            int(self.columns is not None and self.columns.dtype == np.int32),
            0 if self.mask is None else self.mask.ctypes.data, 0 if self.mask is None else self.mask.shape[1],
            self.values.ctypes.data, VALUE_TYPES[self.values_type][1],
            0 if self.scales is None else self.scales.ctypes.data, self.shape[0], self.shape[1]))
        object.__setattr__(self, "_nbytes", self._count_bytes())

    def __getstate__(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # not the addresses of this copy's arrays

    def __setstate__(self, state: dict) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)
        self.__post_init__()  # a copy or an unpickled weight points the kernel at its own arrays

    @property
    def nnz(self) -> int:
        return int(self.offsets[-1])

    @property
    def nbytes(self) -> int:
        """The bytes one product reads of the weight (values, indices or bits, row offsets)."""
        return self._nbytes

    def _count_bytes(self) -> int:
        """The bytes one product reads of the weight (values, indices or bits, row offsets)."""
        index = self.columns.itemsize * self.nnz if self.columns is not None else self.mask.nbytes
        scales = 0 if self.scales is None else self.scales.nbytes
        return self.nnz * self.values.itemsize + index + self.offsets.nbytes + scales

    @classmethod
    def pack(cls, weight: Tensor, form: str, *, values: str = "fp32", pattern: Optional[tuple[int, int]] = None,
             scales: Optional[Tensor] = None) -> "PackedWeight":
        """Pack the non-zero entries of the 2-D ``weight``; for ``int8`` values, ``weight`` holds integer codes
        in [-127, 127] and ``scales`` one fp32 scale per row (a row's weights are its codes times its scale).

        Raises:
            ConfigError: an unknown form or value type, a weight that is not 2-D, on another device or holds NaN
                or infinite values, (with ``pattern``) one that breaks the N:M pattern or whose rows do not
                divide into groups of M, or int8 codes that are not integers in [-127, 127] or come without
                finite scales (or scales with another value type).
        """
        if form not in FORMATS:
            raise ConfigError(f"unknown sparse form {form!r}; expected one of {FORMATS}")
        if values not in VALUE_TYPES:
            raise ConfigError(f"unknown value type {values!r}; expected one of {tuple(VALUE_TYPES)}")
        if weight.dim() != 2:
            raise ConfigError(f"the sparse kernels take a 2-D weight, got shape {tuple(weight.shape)}")
        if weight.device.type != "cpu":
            raise ConfigError(f"the sparse kernels run on the CPU; the weight is on {weight.device}")
        w = weight.detach().to(torch.float32)
        if not torch.isfinite(w).all():
            raise ConfigError("the weight holds NaN or infinite values; the sparse kernels need finite weights")
        if pattern is not None:
            check_pattern(w != 0, pattern)
            form = "bitmask"
        rows, cols = w.shape
        row_scales = _int8_scales(w, scales) if values == "int8" else None
        if values != "int8" and scales is not None:
            raise ConfigError(f"scales are for int8 codes; the values are {values}")
        keep = w != 0
        counts = keep.sum(dim=1).numpy().astype(np.int64)
        offsets = np.zeros(rows + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        stored = w[keep].to(VALUE_TYPES[values][0])
        bits = stored.view(torch.int16).numpy().view(np.uint16) if values in ("fp16", "bf16") else stored.numpy()
        packed_values = np.zeros(len(bits) + PAD, dtype=bits.dtype)
        packed_values[:len(bits)] = bits
        parts = {"pattern": pattern, "scales": row_scales}
        if form == "csr":
            index = np.uint16 if cols <= 65536 else np.int32
            columns = torch.nonzero(keep, as_tuple=True)[1].numpy().astype(index)
            return cls(form, (rows, cols), values, offsets, packed_values, columns=columns, **parts)
        mask = np.packbits(keep.numpy(), axis=1, bitorder="little")
        return cls(form, (rows, cols), values, offsets, packed_values, mask=np.ascontiguousarray(mask), **parts)

    def dense(self) -> Tensor:
        """The fp32 weight these parts hold."""
        rows, cols = self.shape
        keep = self.keep_mask()
        out = torch.zeros(rows, cols)
        out[keep] = self.stored_values()
        return out

    def keep_mask(self) -> Tensor:
        """Where the stored non-zeros are, as a bool ``[rows, cols]``."""
        rows, cols = self.shape
        if self.mask is not None:
            return torch.from_numpy(np.unpackbits(self.mask, axis=1, count=cols, bitorder="little").astype(bool))
        keep = torch.zeros(rows, cols, dtype=torch.bool)
        keep[torch.from_numpy(self._row_of_values()), torch.from_numpy(self.columns.astype(np.int64))] = True
        return keep

    def _row_of_values(self) -> np.ndarray:
        """The row of each stored value, in order."""
        return np.repeat(np.arange(self.shape[0]), np.diff(self.offsets))

    def stored_values(self) -> Tensor:
        """The non-zero values as fp32, in row order."""
        raw = self.values[:self.nnz]
        if self.values_type == "int8":
            return torch.from_numpy(raw.astype(np.float32) * self.scales[self._row_of_values()])
        if self.values_type == "fp32":
            return torch.from_numpy(raw.copy())
        return torch.from_numpy(raw.view(np.int16).copy()).view(VALUE_TYPES[self.values_type][0]).float()

    def matmul(self, x: Tensor, bias: Optional[Tensor] = None, *, threads: Optional[int] = None) -> Tensor:
        """``x @ W^T (+ bias)`` for a 2-D fp32 CPU ``x`` of ``cols`` features (any strides).

        Raises:
            ConfigError: for another dtype, device or width, or when the compiled kernels are not built.
        """
        if x.dim() != 2 or x.shape[1] != self.shape[1]:
            raise ConfigError(f"the input has shape {tuple(x.shape)}; expected [batch, {self.shape[1]}]")
        if x.dtype != torch.float32 or x.device.type != "cpu":
            raise ConfigError(f"the sparse kernels take fp32 CPU inputs, got {x.dtype} on {x.device}")
        return self.product(x.shape[0], bias, threads=threads)(x)

    def product(self, batch: int, bias: Optional[Tensor] = None, *,
                threads: Optional[int] = None) -> Callable[[Tensor], Tensor]:
        """A function of an fp32 CPU ``x`` of ``batch`` rows of ``cols`` features (any leading shape, any
        strides) giving ``x @ W^T (+ bias)`` shaped ``[..., rows]``: ``bias`` and the kernel's arguments checked
        and bound once, so a call costs the kernel and an output tensor. The caller checks ``x``'s dtype,
        device and size (as :meth:`matmul` does).

        Raises:
            ConfigError: for a bias that is not an fp32 CPU vector of ``rows``, or when the compiled kernels are
                not built.
        """
        rows, cols = self.shape
        if bias is not None and (bias.dtype != torch.float32 or bias.shape != (rows,) or bias.device.type != "cpu"):
            raise ConfigError(f"the bias must be an fp32 CPU vector of {rows}, got {tuple(bias.shape)} {bias.dtype}")
        run = compiled_module().matmul
        bias = None if bias is None else bias.contiguous()
        bias_address = 0 if bias is None else bias.data_ptr()
        weight = self._weight_args
        small = self._nbytes < SINGLE_THREAD_BYTES
        # the kernel's scratch, in fp32 slots (16 spare for alignment): a transposed tile of 16 rows of x in fp64
        # above batch 1, x in fp64 for CSR at batch 1; the batch-1 bitmask kernel sums in fp32 and needs none
        scratch_size = cols * 32 + 16 if batch > 1 else cols * 2 + 16 if self.form == "csr" else 0

        def product(x: Tensor) -> Tensor:
            x = x.contiguous()
            y = torch.empty(*x.shape[:-1], rows)
            scratch = torch.empty(scratch_size) if scratch_size else None  # this call's own: calls may overlap
            run(*weight, x.data_ptr(), batch, y.data_ptr(), bias_address,
                threads or (1 if small else torch.get_num_threads()), 0 if scratch is None else _aligned(scratch))
            return y

        product.keep = (self, bias)  # what the bound addresses point into lives as long as the function
        return product


def _int8_scales(codes: Tensor, scales: Optional[Tensor]) -> np.ndarray:
    """``scales`` as a float32 array, after checking them and the codes they scale."""
    if scales is None:
        raise ConfigError("int8 values need their codes and one scale per row (prunekit.quantize.uniform.pack_int8 "
                          "quantizes a weight and packs it)")
    if not torch.equal(codes, codes.round()) or (codes.numel() and float(codes.abs().max()) > 127):
        raise ConfigError("int8 codes must be integers in [-127, 127]")
    if tuple(scales.shape) != (codes.shape[0],) or not torch.isfinite(scales).all():
        raise ConfigError(f"int8 codes need {codes.shape[0]} finite scales (one per row), got shape "
                          f"{tuple(scales.shape)}")
    return scales.detach().cpu().to(torch.float32).numpy().copy()


def _aligned(buffer: Tensor) -> int:
    """The first 64-byte aligned address inside ``buffer`` (it holds 16 spare floats)."""
    address = buffer.data_ptr()
    return address + (-address % 64)


def check_pattern(keep: Tensor, pattern: tuple[int, int]) -> None:
    """Refuse a keep mask that breaks the ``(n, m)`` pattern: at most ``n`` kept in every ``m`` consecutive
    entries of a row (rows must divide into groups of ``m``).

    Example:
        >>> check_pattern(torch.tensor([[True, False, True, False]]), (2, 4))
        >>> check_pattern(torch.tensor([[True, True, True, False]]), (2, 4))
        Traceback (most recent call last):
        ...
        prunekit.errors.ConfigError: the weight breaks the 2:4 pattern in 1 of its 1 groups of 4 (row 0, columns 0-3)
    """
    n, m = pattern
    rows, cols = keep.shape
    if cols % m:
        raise ConfigError(f"a {n}:{m} pattern needs rows that divide into groups of {m}; the weight has {cols} columns")
    groups = keep.reshape(rows, cols // m, m).sum(dim=2)
    bad = torch.nonzero(groups > n)
    if len(bad):
        r, g = bad[0].tolist()
        raise ConfigError(f"the weight breaks the {n}:{m} pattern in {len(bad)} of its {groups.numel()} groups of {m} "
                          f"(row {r}, columns {g * m}-{g * m + m - 1})")
