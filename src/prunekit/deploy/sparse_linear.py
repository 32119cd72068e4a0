"""``SparseLinear``: an ``nn.Linear`` run with the fastest measured of dense and sparse kernels.

Kernels: ``dense`` (``F.linear``); prunekit's own (:mod:`prunekit.kernels`, compiled at install):
``prunekit_csr`` (CSR with 16-bit column indices) and ``prunekit_bitmask`` (one bit per weight and the
non-zero values; N:M patterns run in it), multi-threaded, vectorised, batch 1 to any; ``scipy_csr``
(``scipy.sparse.csr_matrix``, single-threaded) and ``torch_csr`` (``torch.sparse_csr``). scipy and torch
process batches larger than ``chunk`` rows chunk by chunk into one ``[out, batch]`` buffer, so the dense
operand stays in cache. CPU only; inputs that are not fp32 run dense.
"""

from __future__ import annotations

import warnings
from typing import Callable, Optional, Sequence

import numpy as np
import scipy.sparse
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..kernels import PackedWeight, VALUE_TYPES, available, note_if_missing
from ..quantize.uniform import pack_int8
from ..timing import Timer, measure, wall_timer

OWN_KERNELS = ("prunekit_csr", "prunekit_bitmask")
KERNELS = ("dense", "torch_csr", "scipy_csr", *OWN_KERNELS)
DEFAULT_KERNELS = ("dense", "scipy_csr", *OWN_KERNELS)
"""Tried by default (prunekit's own only where they are built): torch's CSR matmul was never clearly faster
than scipy's here, and it stalls when the cores are shared (OpenMP threads); pass ``kernels=KERNELS`` to try
it too."""
SPARSE_KERNELS = KERNELS[1:]
MAX_SPARSE_DENSITY = 0.3
"""Above this fraction of non-zero weights scipy's and torch's kernels are not tried (never faster here)."""
MAX_OWN_DENSITY = 0.75
"""prunekit's kernels are tried up to this density (a bitmask reads 1/32 of the dense bytes plus the values)."""
MARGIN = 0.9
"""A sparse kernel is chosen only if its median time is below ``MARGIN`` x the dense median."""


def usable_kernels(kernels: Sequence[str]) -> tuple[str, ...]:
    """``kernels`` without prunekit's own when they are not built (saying so once)."""
    if available() or not set(kernels) & set(OWN_KERNELS):
        return tuple(kernels)
    note_if_missing()
    return tuple(k for k in kernels if k not in OWN_KERNELS)


def kernel_density_limit(kernel: str) -> float:
    """The largest density at which ``kernel`` is tried."""
    return MAX_OWN_DENSITY if kernel in OWN_KERNELS else MAX_SPARSE_DENSITY


def pack_weight(weight: Tensor, form: str, values: str) -> PackedWeight:
    """``weight`` packed in ``form`` with ``values`` (int8: its uniform 8-bit codes, :func:`pack_int8`)."""
    return pack_int8(weight, form) if values == "int8" else PackedWeight.pack(weight, form, values=values)


class SparseLinear(nn.Module):
    """An ``nn.Linear`` that runs with the fastest measured kernel for each batch size.

    Args:
        linear: the layer (pruned weights zero); its weight and bias tensors are shared, not copied.
        chunk: sparse kernels process batches larger than this in chunks of this many rows.
        repeats: timed calls per kernel when calibrating (the median counts).
        timer: how one call is timed (see :data:`Timer`).
        kernels: the candidates (``"dense"`` always among them; prunekit's own are dropped where not built).
        values: the value type prunekit's kernels store (``fp32``; ``fp16``, ``bf16`` or ``int8`` codes round the
            weights, and every kernel, dense included, then computes with the rounded weight).

    Attributes:
        choice: ``{batch size: kernel}``; a batch size not in it is calibrated on first use,
            unless ``default`` is set.
        timings: ``{batch size: {kernel: median seconds}}`` measured by :meth:`calibrate`.

    Example:
        >>> layer = SparseLinear(nn.Linear(1000, 1000))
        >>> layer.calibrate(torch.randn(1, 1000))  # 0% sparse: only dense is tried
        'dense'
    """

    def __init__(self, linear: nn.Linear, *, chunk: int = 256, repeats: int = 15, timer: Timer = wall_timer,
                 kernels: Sequence[str] = DEFAULT_KERNELS, values: str = "fp32"):
        super().__init__()
        w = linear.weight.detach()
        if w.device.type != "cpu":
            raise ConfigError(f"sparse kernels run on the CPU; the layer's weight is on {w.device}: move the model "
                              f"to the CPU first")
        self.in_features, self.out_features = w.shape[1], w.shape[0]
        if values not in VALUE_TYPES:
            raise ConfigError(f"unknown value type {values!r}; expected one of {tuple(VALUE_TYPES)}")
        if values != "fp32":  # every kernel, dense too, computes with the rounded weight
            w = pack_weight(w, "csr", values).dense()
        self.register_buffer("weight", w)  # shares the layer's storage (fp32 values); sparsify() works on a copy
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach())
        self.density = float(torch.count_nonzero(w)) / max(w.numel(), 1)
        self.chunk, self.repeats, self.timer = chunk, repeats, timer
        unknown = set(kernels) - set(KERNELS)
        if unknown or "dense" not in kernels:
            raise ConfigError(f"kernels must include 'dense' and come from {', '.join(KERNELS)}; got {list(kernels)}")
        self.values = values
        self.kernels = usable_kernels(kernels)
        self.choice: dict[int, str] = {}
        self.timings: dict[int, dict[str, float]] = {}
        self.default: Optional[str] = None
        self._formats: dict[str, object] = {}
        self._products: dict[tuple[int, str], Callable[[Tensor], Tensor]] = {}

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"density={self.density:.4f}, choice={self.choice}")

    def forward(self, x: Tensor) -> Tensor:
        batch = x.numel() // self.in_features
        kernel = self.choice.get(batch, self.default)
        if kernel == "dense" or x.dtype != torch.float32 or x.device.type != "cpu":
            return F.linear(x, self.weight, self.bias)
        product = self._products.get((batch, kernel))
        if product is not None and x.shape[-1] == self.in_features:
            return product(x)  # prunekit's kernel, its arguments bound: a small layer's call costs microseconds
        flat = x.reshape(-1, self.in_features)
        if kernel is None:
            kernel = self.calibrate(flat)
        return self.run(kernel, flat).reshape(*x.shape[:-1], self.out_features)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_products"] = {}  # bound functions: rebuilt on first use by a copy or an unpickled layer
        return state

    def to_linear(self) -> nn.Linear:
        """A plain ``nn.Linear`` with this layer's weight and bias."""
        w = self.weight
        layer = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, device=w.device,
                          dtype=w.dtype)
        with torch.no_grad():
            layer.weight.copy_(w)
            if self.bias is not None:
                layer.bias.copy_(self.bias)
        return layer

    def run(self, kernel: str, x: Tensor) -> Tensor:
        """``x @ weight.T + bias`` with ``kernel`` (one of :data:`KERNELS`); ``x`` is 2-D, fp32, on the CPU (what
        :meth:`forward` and :meth:`calibrate` check)."""
        if kernel == "dense":
            return F.linear(x, self.weight, self.bias)
        if kernel not in SPARSE_KERNELS:
            raise ConfigError(f"unknown kernel {kernel!r}; choose from {', '.join(KERNELS)}")
        if kernel in OWN_KERNELS:  # bound once per batch size: a small layer's product takes microseconds
            product = self._products.get((x.shape[0], kernel))
            if product is None:
                product = self.packed(kernel.removeprefix("prunekit_")).product(x.shape[0], self.bias)
                self._products[(x.shape[0], kernel)] = product
            return product(x)
        y = self._scipy(x) if kernel == "scipy_csr" else self._torch(x)
        return y if self.bias is None else y + self.bias

    def packed(self, form: str) -> PackedWeight:
        """The weight packed for prunekit's ``form`` kernel (built on first use)."""
        return self._format(f"prunekit_{form}", lambda: pack_weight(self.weight, form, self.values))

    def _torch(self, x: Tensor) -> Tensor:
        csr = self._format("torch_csr", self._to_torch_csr)
        if x.shape[0] == 1:
            return torch.mv(csr, x[0]).reshape(1, -1)
        out = torch.empty(self.out_features, x.shape[0], dtype=x.dtype)  # y.T = W @ x.T, chunk by chunk
        for start in range(0, x.shape[0], self.chunk):
            out[:, start:start + self.chunk] = torch.mm(csr, x[start:start + self.chunk].t())
        return out.t()

    def _to_torch_csr(self) -> Tensor:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta state"
            return self.weight.to_sparse_csr()

    def _scipy(self, x: Tensor) -> Tensor:
        csr = self._format("scipy_csr", lambda: scipy.sparse.csr_matrix(self.weight.cpu().numpy()))
        xn = x.detach().numpy()
        if xn.shape[0] == 1:
            return torch.from_numpy(csr @ xn[0]).reshape(1, -1)
        out = np.empty((self.out_features, xn.shape[0]), np.result_type(csr.dtype, xn.dtype))
        for start in range(0, xn.shape[0], self.chunk):  # numpy buffer: no torch threads involved
            out[:, start:start + self.chunk] = csr @ xn[start:start + self.chunk].T
        return torch.from_numpy(out).t()

    def _format(self, name: str, build: Callable[[], object]):
        if name not in self._formats:
            self._formats[name] = build()
        return self._formats[name]

    @torch.inference_mode()
    def calibrate(self, x: Tensor) -> str:
        """Time every eligible kernel on ``x`` (2-D), record and return the choice for ``len(x)``.

        Raises:
            ConfigError: for an ``x`` that is not a 2-D fp32 CPU tensor of ``in_features`` columns.
        """
        if x.dim() != 2 or x.shape[1] != self.in_features or x.dtype != torch.float32 or x.device.type != "cpu":
            raise ConfigError(f"calibration takes a 2-D fp32 CPU input of {self.in_features} features, got "
                              f"{tuple(x.shape)} {x.dtype} on {x.device}")
        kernels = [k for k in self.kernels if k == "dense" or self.density <= kernel_density_limit(k)]
        times = measure({k: (lambda k=k: self.run(k, x)) for k in kernels}, self.repeats, self.timer)
        best = min(kernels, key=times.__getitem__)
        if best != "dense" and times[best] >= MARGIN * times["dense"]:
            best = "dense"
        self.choice[x.shape[0]], self.timings[x.shape[0]] = best, times
        return best
