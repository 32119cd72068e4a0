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
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from ..batches import make_inputs
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
    input_shape: Optional[Sequence[int]] = None,
    example_inputs: Any = None,
    atol: float = ONNX_ATOL,
    check_batch: int = 8,
) -> OnnxExport:
    """Export ``model`` (eval mode; the batch dimension is dynamic) and check it with onnxruntime.

    The file is written to a temporary name, checked, and only then renamed into place: a failed
    or interrupted export never leaves a corrupt file under ``path``.

    Args:
        model: the model (a compact one: ONNX has no sparse speed-up for zeros in dense weights).
        path: the ``.onnx`` file to write (weights inside the file).
        input_shape: one sample's shape, e.g. ``(1, 28, 28)`` (random inputs), or:
        example_inputs: one batch of any form (tensor, tuple, dict of keyword arguments).
        atol: the largest allowed absolute difference between onnxruntime's and PyTorch's outputs,
            relative to the output scale.
        check_batch: batch size of the input used for the check.

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
    if input_shape is None and example_inputs is None:
        raise ConfigError("export_onnx needs input_shape= (one sample's shape) or example_inputs= (one batch)")
    model = model.eval()
    path = Path(path)
    args, kwargs = make_inputs(input_shape, example_inputs)(check_batch)
    with atomic_path(path) as tmp:  # checked before it is renamed into place: no corrupt file under ``path``
        _export(model, args, kwargs, tmp, path)
        session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        feed = [t for t in (*args, *kwargs.values()) if isinstance(t, torch.Tensor)]
        names = [i.name for i in session.get_inputs()]
        got = session.run(None, {name: t.numpy() for name, t in zip(names, feed)})[0]
        with torch.inference_mode():
            want = _first_tensor(model(*args, **kwargs)).numpy()
        scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
        diff = float(np.abs(got - want).max()) / scale if got.shape == want.shape else float("inf")
        if not diff <= atol:
            raise PrunekitError(f"{path}: onnxruntime's outputs differ from PyTorch's by {diff:.3g} > {atol:g} "
                                f"(shapes {got.shape} and {want.shape}); nothing was written")
        size = tmp.stat().st_size
    return OnnxExport(path, size, diff)


def _first_tensor(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    values = out.to_tuple() if hasattr(out, "to_tuple") else (out.values() if isinstance(out, dict) else out)
    return next(v for v in values if isinstance(v, torch.Tensor))


def _export(model: nn.Module, args: tuple, kwargs: dict, tmp: Path, path: Path) -> None:
    batch = torch.export.Dim("batch")
    if kwargs and args:
        shapes = None  # mixed positional and keyword inputs: exported with a fixed batch size
    elif kwargs:
        shapes = {k: ({0: batch} if isinstance(v, torch.Tensor) else None) for k, v in kwargs.items()}
    else:
        shapes = tuple({0: batch} if isinstance(a, torch.Tensor) else None for a in args)
    quiet = io.StringIO()
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(quiet):
            warnings.simplefilter("ignore")
            torch.onnx.export(model, args, str(tmp), kwargs=kwargs or None, dynamic_shapes=shapes, dynamo=True,
                              external_data=False, verbose=False)
    except Exception as exc:  # the exporter raises many types
        raise PrunekitError(f"ONNX export of {type(model).__name__} to {path} failed: {type(exc).__name__}: "
                            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}") from None
    finally:
        logger.setLevel(level)
