"""ONNX export of (compact) models, verified against onnxruntime.

Example:
    >>> import tempfile
    >>> from prunekit.compact import compact
    >>> from prunekit.models import get_model
    >>> from prunekit.prune import prune_model
    >>> model = get_model("lenet300", seed=0)
    >>> small = compact(model, prune_model(model, "unit", 75.0)).model
    >>> info = export_onnx(small, tempfile.mkdtemp() + "/lenet-u75.onnx", input_shape=(1, 28, 28))
    >>> info.max_abs_diff < 1e-4
    True
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, PrunekitError
from ..storage import atomic_path

ONNX_ATOL = 1e-4


@dataclass(frozen=True)
class OnnxExport:
    """The written file, its size, and the largest output difference from PyTorch (onnxruntime)."""

    path: Path
    file_bytes: int
    max_abs_diff: float


def export_onnx(
    model: nn.Module,
    path: Union[str, os.PathLike],
    *,
    input_shape: Sequence[int] = (1, 28, 28),
    atol: float = ONNX_ATOL,
    check_batch: int = 8,
) -> OnnxExport:
    """Export ``model`` (eval mode; the batch dimension is dynamic) and check it with onnxruntime.

    Args:
        model: the model (a compact one: ONNX has no sparse speed-up for zeros in dense weights).
        path: the ``.onnx`` file to write (weights inside the file).
        input_shape: one sample's shape, e.g. ``(1, 28, 28)``.
        atol: the largest allowed absolute difference between onnxruntime's and PyTorch's outputs.
        check_batch: batch size of the random input used for the check.

    Returns:
        An :class:`OnnxExport`.

    Raises:
        ConfigError: if ``onnx``/``onnxruntime`` are not installed (``pip install 'prunekit[onnx]'``).
        PrunekitError: if the export fails or onnxruntime's outputs differ by more than ``atol``.
    """
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError("ONNX export needs onnx, onnxscript and onnxruntime: pip install 'prunekit[onnx]'") from None
    model = model.eval()
    path = Path(path)
    x = torch.randn(check_batch, *input_shape)
    with atomic_path(path) as tmp:  # checked before it is renamed into place: no corrupt file under ``path``
        _export(model, x, tmp, path)
        session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        with torch.inference_mode():
            want = model(x).numpy()
        diff = float(np.abs(got - want).max()) if got.shape == want.shape else float("inf")
        if not diff <= atol:
            raise PrunekitError(f"{path}: onnxruntime's outputs differ from PyTorch's by {diff:.3g} > {atol:g} "
                                f"(shapes {got.shape} and {want.shape}); nothing was written")
        size = tmp.stat().st_size
    return OnnxExport(path, size, diff)


def _export(model: nn.Module, x: torch.Tensor, tmp: Path, path: Path) -> None:
    batch = torch.export.Dim("batch")
    quiet = io.StringIO()
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(quiet):
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x,), str(tmp), input_names=["input"], output_names=["output"],
                              dynamic_shapes=({0: batch},), dynamo=True, external_data=False, verbose=False)
    except Exception as exc:  # the exporter raises many types
        raise PrunekitError(f"ONNX export of {type(model).__name__} to {path} failed: {exc}") from None
    finally:
        logger.setLevel(level)
