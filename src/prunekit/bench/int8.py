"""Real int8 inference on the CPU, through ONNX Runtime's integer kernels, measured against fp32.

A model is exported to ONNX (:func:`~prunekit.deploy.onnx.export_onnx`) and quantized by ONNX Runtime's
dynamic quantization: every MatMul/Gemm weight becomes int8 per output channel, symmetric (zero is code 0,
so pruned weights stay zero; a weight already on prunekit's grid, ``code * max|w[c]| / 127``, keeps its
code), and the activations are quantized to uint8 on the fly, so the products run in integer arithmetic
(MLAS's int8 GEMM). The candidates, measured interleaved on the reference MLP (2 AMD EPYC cores, AVX2, no
VNNI; ratios to fp32 PyTorch): ONNX Runtime int8 0.40x at batch 1 and 0.67x at batch 256; PyTorch's
``torch.ao`` dynamic quantization 0.78x and 0.62x, but ``torch.ao.quantization`` is deprecated (its
successor, torchao, ships no CPU int8 kernel for this); ONNX Runtime in fp32 0.75x and 1.34x. Its kernels
read every weight, zero or not: int8 buys speed from the bytes, not from the sparsity.

Example:
    >>> import tempfile, torch
    >>> from prunekit.models import get_model
    >>> model = get_model("lenet300", seed=0).eval()
    >>> int8 = Int8Model.build(model, (1, 28, 28), tempfile.mkdtemp())
    >>> x = torch.randn(4, 1, 28, 28)
    >>> out = int8(x)
    >>> out.shape, bool((out - model(x)).abs().max() < 0.1)
    (torch.Size([4, 10]), True)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from ..deploy.onnx import export_onnx
from ..errors import ConfigError
from ..timing import measure


@dataclass
class Int8Model:
    """An ONNX Runtime session of a model with int8 weights (``path``); called like the model on one tensor.
    ``zero_weights``: how many int8 weight entries are exactly zero (pruned weights kept as zeros)."""

    path: Path
    session: Any
    input_name: str
    zero_weights: int
    weights: int

    @classmethod
    def build(cls, model: nn.Module, input_shape: Sequence[int], folder: str | os.PathLike, *,
              threads: int | None = None) -> "Int8Model":
        """Export ``model`` to ``folder`` as fp32 ONNX, quantize it to int8 (per channel, symmetric) and open it.

        Raises:
            ConfigError: when onnxruntime is not installed (``pip install 'prunekit[onnx]'``).
        """
        try:
            import onnx
            import onnxruntime
            from onnxruntime.quantization import QuantType, quantize_dynamic
        except ImportError:
            raise ConfigError("int8 inference runs on onnxruntime: pip install 'prunekit[onnx]'") from None
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        fp32, int8 = folder / "fp32.onnx", folder / "int8.onnx"
        export_onnx(model.eval(), fp32, input_shape=tuple(input_shape))
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)
        zeros = total = 0
        for tensor in onnx.load(str(int8)).graph.initializer:
            if tensor.data_type == onnx.TensorProto.INT8 and len(tensor.dims) == 2:
                values = onnx.numpy_helper.to_array(tensor)
                zeros, total = zeros + int((values == 0).sum()), total + values.size
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        # idle threads sleep: spinning ones would steal the cores from what is timed beside them (PyTorch)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = onnxruntime.InferenceSession(str(int8), options, providers=["CPUExecutionProvider"])
        return cls(int8, session, session.get_inputs()[0].name, zeros, total)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {self.input_name: x.detach().cpu().numpy()})[0])


def int8_accuracy(int8: Int8Model, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Top-1 accuracy of the int8 session on ``(x, y)``."""
    correct = 0
    for start in range(0, len(x), batch_size):
        correct += int((int8(x[start:start + batch_size]).argmax(1) == y[start:start + batch_size]).sum())
    return correct / max(1, len(x))


def int8_latency(fp32: nn.Module, int8: Mapping[str, Int8Model], input_shape: Sequence[int],
                 batch_sizes: Sequence[int] = (1, 256), repeats: int = 50) -> list[dict[str, Any]]:
    """Median milliseconds of the fp32 PyTorch ``fp32`` model and of each int8 session, interleaved, per batch
    size; each row ``{"batch", "version", "ms", "ratio"}`` (``ratio``: to fp32 at that batch size)."""
    rows = []
    for batch in batch_sizes:
        x = torch.randn(batch, *input_shape, generator=torch.Generator().manual_seed(0))
        array = x.numpy()
        fns = {"fp32 (PyTorch)": _no_grad(fp32, x)}
        fns.update({name: (lambda s=session: s.session.run(None, {s.input_name: array})) for name, session in int8.items()})
        times = measure(fns, repeats)
        for name, seconds in times.items():
            rows.append({"batch": batch, "version": name, "ms": seconds * 1e3,
                         "ratio": seconds / times["fp32 (PyTorch)"]})
    return rows


def _no_grad(model: nn.Module, x: torch.Tensor):
    def run():
        with torch.inference_mode():
            return model(x)
    return run
