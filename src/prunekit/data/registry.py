"""The registry of datasets: every entry has a ``load(data_dir, *, download, progress, mirrors)``.

Example:
    >>> {'mnist', 'fashion-mnist', 'cifar10', 'digits'} <= set(DATASETS.names())
    True
    >>> DATASETS.get("Fashion_MNIST").name
    'fashion-mnist'
"""

from __future__ import annotations

from typing import Any

from ..registry import Registry

DATASETS: Registry[Any] = Registry("dataset", normalize=lambda name: name.strip().lower().replace("_", "-"))
"""Registered datasets by name (case and ``_``/``-`` ignored)."""
