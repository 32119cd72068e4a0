"""Devices and numeric precision: ``auto``/``cpu``/``cuda[:N]``/``mps``, and fp32/bf16/fp16 autocast.

Example:
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> precision_context("fp32", torch.device("cpu")).__class__.__name__
    'nullcontext'
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from ..errors import ConfigError

PRECISIONS = ("fp32", "bf16", "fp16")


def resolve_device(spec: Any = None) -> torch.device:
    """``None``/``"auto"``: the first of CUDA, MPS, CPU that is available; else the named device.

    Raises:
        ConfigError: for an unknown name or a device this machine does not have.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    if spec in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {spec!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "this PyTorch build has no CUDA support" if torch.version.cuda is None else \
                "no CUDA GPU is visible (check the driver and CUDA_VISIBLE_DEVICES)"
            raise ConfigError(f"device {spec!r} is not available: {build} (torch {torch.__version__}); "
                              f"use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {spec!r} does not exist: this machine has {torch.cuda.device_count()} CUDA "
                              f"device(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    elif device.type == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise ConfigError(f"device {spec!r} is not available (Apple MPS needs a Mac with Metal); use --device cpu")
    elif device.type != "cpu":
        raise ConfigError(f"unsupported device {spec!r}; use auto, cpu, cuda, cuda:N or mps")
    return device


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse a precision the device cannot compute in (fp16 autocast needs CUDA or MPS)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError("fp16 autocast needs a GPU (cuda or mps); on the CPU use --precision bf16 or fp32")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"{torch.cuda.get_device_name(device)} does not support bf16; use --precision fp16 or fp32")


def precision_context(precision: str, device: torch.device):
    """The autocast context of a precision (a no-op for fp32)."""
    check_precision(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(precision: str, device: torch.device):
    """A gradient scaler for fp16 training (``None`` otherwise)."""
    if precision == "fp16":
        return torch.amp.GradScaler(device.type)
    return None


def model_device(model: torch.nn.Module) -> torch.device:
    """Where a model's parameters live (the CPU for a model without parameters)."""
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")
