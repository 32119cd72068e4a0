"""Sparse inference: run weight-pruned ``nn.Linear`` layers with sparse kernels where that is faster.

:class:`SparseLinear` holds a layer's weight densely and (built on first use) as a
``torch.sparse_csr`` tensor and a ``scipy.sparse.csr_matrix``. For each batch size it picks,
by measuring on the real input (median of repeats, kernels interleaved), the fastest of
``dense``, ``torch_csr`` and ``scipy_csr``; a sparse kernel must beat dense by
``1 - MARGIN`` (10%) to be chosen, and is not even tried above :data:`MAX_SPARSE_DENSITY`,
so the choice falls back to dense whenever sparse is not clearly faster. Sparse kernels
process large batches in chunks of ``chunk`` rows (the dense operand then stays in cache).
Conv layers always run dense (remove filters with :func:`~prunekit.prune.compact.compact`).

:func:`sparsify` turns a (masked) model into such a runner. For a whole test set at once,
:func:`~prunekit.fast_eval.fast_forward` uses a cheaper, rule-based choice.

Example:
    >>> from prunekit.prune import prune_model
    >>> model = get_model("mlp", seed=0); mask = prune_model(model, "weight", 95.0)  # doctest: +SKIP
    >>> runner = sparsify(model, batch_sizes=(1, 256), input_shape=(1, 28, 28))  # doctest: +SKIP
    >>> kernel_choices(runner)["fc2"]  # doctest: +SKIP
    {1: 'scipy_csr', 256: 'scipy_csr'}
"""

from __future__ import annotations

import copy
import warnings
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import scipy.sparse
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import ConfigError
from .prune.mask import Mask
from .timing import Timer, measure, wall_timer

KERNELS = ("dense", "torch_csr", "scipy_csr")
DEFAULT_KERNELS = ("dense", "scipy_csr")
"""Tried by default: torch's CSR matmul was never clearly faster than scipy's here, and it stalls when
the cores are shared (OpenMP threads); pass ``kernels=KERNELS`` to try it too."""
SPARSE_KERNELS = KERNELS[1:]
MAX_SPARSE_DENSITY = 0.3
"""Above this fraction of non-zero weights sparse kernels are not tried (never faster on CPU)."""
MARGIN = 0.9
"""A sparse kernel is chosen only if its median time is below ``MARGIN`` x the dense median."""

class SparseLinear(nn.Module):
    """An ``nn.Linear`` that runs with the fastest measured kernel for each batch size.

    Args:
        linear: the layer (pruned weights zero); its weight and bias tensors are shared, not copied.
        chunk: sparse kernels process batches larger than this in chunks of this many rows.
        repeats: timed calls per kernel when calibrating (the median counts).
        timer: how one call is timed (see :data:`Timer`).
        kernels: the candidates (``"dense"`` always among them).

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
                 kernels: Sequence[str] = DEFAULT_KERNELS):
        super().__init__()
        w = linear.weight.detach()
        if w.device.type != "cpu":
            raise ConfigError(f"sparse kernels run on the CPU; the layer's weight is on {w.device}: move the model "
                              f"to the CPU first")
        self.in_features, self.out_features = w.shape[1], w.shape[0]
        self.register_buffer("weight", w)  # shares the layer's storage; sparsify() works on a copy
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach())
        self.density = float(torch.count_nonzero(w)) / max(w.numel(), 1)
        self.chunk, self.repeats, self.timer = chunk, repeats, timer
        unknown = set(kernels) - set(KERNELS)
        if unknown or "dense" not in kernels:
            raise ConfigError(f"kernels must include 'dense' and come from {', '.join(KERNELS)}; got {list(kernels)}")
        self.kernels = tuple(kernels)
        self.choice: dict[int, str] = {}
        self.timings: dict[int, dict[str, float]] = {}
        self.default: Optional[str] = None
        self._formats: dict[str, object] = {}

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"density={self.density:.4f}, choice={self.choice}")

    def forward(self, x: Tensor) -> Tensor:
        kernel = self.choice.get(x.numel() // self.in_features, self.default)
        if kernel == "dense":
            return F.linear(x, self.weight, self.bias)
        flat = x.reshape(-1, self.in_features)
        if kernel is None:
            kernel = self.calibrate(flat)
        return self.run(kernel, flat).reshape(*x.shape[:-1], self.out_features)

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
        """``x @ weight.T + bias`` with ``kernel`` (one of :data:`KERNELS`); ``x`` is 2-D."""
        if kernel == "dense":
            return F.linear(x, self.weight, self.bias)
        if kernel not in SPARSE_KERNELS:
            raise ConfigError(f"unknown kernel {kernel!r}; choose from {', '.join(KERNELS)}")
        y = self._scipy(x) if kernel == "scipy_csr" else self._torch(x)
        return y if self.bias is None else y + self.bias

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
        """Time every eligible kernel on ``x`` (2-D), record and return the choice for ``len(x)``."""
        kernels = [k for k in self.kernels if k == "dense" or self.density <= MAX_SPARSE_DENSITY]
        times = measure({k: (lambda k=k: self.run(k, x)) for k in kernels}, self.repeats, self.timer)
        best = min(kernels, key=times.__getitem__)
        if best != "dense" and times[best] >= MARGIN * times["dense"]:
            best = "dense"
        self.choice[x.shape[0]], self.timings[x.shape[0]] = best, times
        return best


def replace_linears(model: nn.Module, make: Callable[[str, nn.Linear], Optional[nn.Module]]) -> nn.Module:
    """Replace, in place, each ``nn.Linear`` for which ``make(name, layer)`` returns a module."""
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if type(child) is nn.Linear:
                full = f"{name}.{child_name}" if name else child_name
                new = make(full, child)
                if new is not None:
                    setattr(module, child_name, new)
    return model


def sparsify(
    model: nn.Module,
    mask: Optional[Mapping[str, Tensor]] = None,
    *,
    batch_sizes: Sequence[int] = (),
    input_shape: Optional[Sequence[int]] = None,
    chunk: int = 256,
    repeats: int = 15,
    timer: Timer = wall_timer,
    kernels: Sequence[str] = DEFAULT_KERNELS,
) -> nn.Module:
    """A copy of ``model`` (masked, eval mode) whose sparse Linear layers are :class:`SparseLinear`.

    Only layers with density <= :data:`MAX_SPARSE_DENSITY` are replaced; after calibrating
    ``batch_sizes``, a layer that chose dense for every one of them is a plain ``nn.Linear`` again,
    so the runner adds no overhead where sparse kernels do not pay.

    Args:
        model: the model (not modified).
        mask: optional mask applied to the copy.
        batch_sizes: batch sizes to calibrate now (others calibrate on first use).
        input_shape: one sample's shape, needed with ``batch_sizes`` (e.g. ``(1, 28, 28)``).
        chunk, repeats, timer, kernels: see :class:`SparseLinear`.

    Returns:
        The runner; its outputs equal the masked model's up to float rounding.

    Example:
        >>> runner = sparsify(model, mask, batch_sizes=[1], input_shape=(1, 28, 28))  # doctest: +SKIP
    """
    if batch_sizes and input_shape is None:
        raise ConfigError("sparsify(batch_sizes=...) needs input_shape=, one sample's shape, e.g. (1, 28, 28)")
    runner = copy.deepcopy(model)
    if mask is not None:
        (mask if isinstance(mask, Mask) else Mask(mask)).apply_(runner)
    runner.eval()

    def make(name: str, layer: nn.Linear) -> Optional[nn.Module]:
        sparse = SparseLinear(layer, chunk=chunk, repeats=repeats, timer=timer, kernels=kernels)
        return sparse if sparse.density <= MAX_SPARSE_DENSITY and len(sparse.kernels) > 1 else None

    replace_linears(runner, make)
    if batch_sizes:
        with torch.inference_mode():
            for batch in batch_sizes:
                runner(torch.randn(batch, *input_shape))
        replace_sparse(runner, lambda m: m.to_linear() if set(m.choice.values()) == {"dense"} else None)
    return runner


def replace_sparse(model: nn.Module, make: Callable[[SparseLinear], Optional[nn.Module]]) -> nn.Module:
    """Replace, in place, each :class:`SparseLinear` for which ``make(layer)`` returns a module."""
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, SparseLinear) and (new := make(child)) is not None:
                setattr(module, child_name, new)
    return model


def kernel_choices(model: nn.Module) -> dict[str, dict[int, str]]:
    """``{layer name: {batch size: kernel}}`` of every :class:`SparseLinear` in ``model``."""
    return {name: dict(m.choice) for name, m in model.named_modules() if isinstance(m, SparseLinear)}
