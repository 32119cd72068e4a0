"""safetensors files (never pickle): write atomically, read with errors that name the file.

Example:
    >>> import tempfile, pathlib, torch
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "w.safetensors"
    >>> save_tensors(path, {"w": torch.ones(2)})
    >>> load_tensors(path)["w"]
    tensor([1., 1.])
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import safetensors
import safetensors.torch
import torch

from ..errors import CheckpointError, OutputError
from .atomic import atomic_path


def save_tensors(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor],
                 metadata: Mapping[str, str] | None = None) -> None:
    """Write tensors (moved to the CPU, made contiguous) to a safetensors file atomically.

    Tensors that share memory (tied weights) are each written in full.
    """
    data = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        try:
            safetensors.torch.save_file(data, str(tmp), metadata=dict(metadata) if metadata else None)
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
        except Exception as exc:  # safetensors' own error type (e.g. a full disk)
            raise OutputError(f"cannot write {path}: {type(exc).__name__}: {exc}") from None


def load_tensors(path: str | os.PathLike, *, what: str = "safetensors file") -> dict[str, torch.Tensor]:
    """Read every tensor of a safetensors file (on the CPU).

    Raises:
        CheckpointError: naming the file when it is missing, a folder, unreadable or not safetensors.
    """
    path = _check_file(path, what)
    try:
        return safetensors.torch.load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"{path} is not a readable {what} ({type(exc).__name__}: {exc})") from None


def tensors_from_bytes(data: bytes, path: str | os.PathLike, *,
                       what: str = "safetensors file") -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file's bytes ``data``, read from ``path`` (named in the errors).

    Raises:
        CheckpointError: naming the file when the bytes are not safetensors.
    """
    try:
        return safetensors.torch.load(data)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable {what} ({type(exc).__name__}: {exc})") from None


def read_metadata(path: str | os.PathLike, *, what: str = "safetensors file") -> dict[str, str]:
    """The string metadata of a safetensors file's header (without reading the tensors)."""
    path = _check_file(path, what)
    try:
        with safetensors.safe_open(str(path), "pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable {what} ({type(exc).__name__}: {exc})") from None


def _check_file(path: str | os.PathLike, what: str) -> Path:
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; expected a {what}")
    if not path.exists():
        raise CheckpointError(f"{path} does not exist")
    if not os.access(path, os.R_OK):
        raise CheckpointError(f"{path} exists but cannot be read (permission denied)")
    return path


def check_state_dict_fits(expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor],
                          source: object) -> None:
    """Check that ``state`` has exactly the names, shapes and dtypes of ``expected`` (a model's state dict).

    Raises:
        CheckpointError: listing missing and unexpected tensors, and every shape or dtype mismatch.
    """
    problems = []
    if missing := sorted(set(expected) - set(state)):
        problems.append(f"missing tensors {missing[:10]}{' ...' if len(missing) > 10 else ''}")
    if unexpected := sorted(set(state) - set(expected)):
        problems.append(f"unexpected tensors {unexpected[:10]}{' ...' if len(unexpected) > 10 else ''}")
    for name in sorted(set(expected) & set(state)):
        want, got = expected[name], state[name]
        if tuple(want.shape) != tuple(got.shape):
            problems.append(f"{name}: checkpoint has shape {list(got.shape)}, model expects {list(want.shape)}")
        elif want.dtype != got.dtype:
            problems.append(f"{name}: checkpoint has dtype {str(got.dtype).removeprefix('torch.')}, "
                            f"model expects {str(want.dtype).removeprefix('torch.')}")
    if problems:
        raise CheckpointError(f"{source} does not fit the model: " + "; ".join(problems))
