"""``load_dataset(name)``: any registered dataset, by name.

Example:
    >>> [name for name in list_datasets() if 'mnist' in name][:4]
    ['emnist-balanced', 'emnist-byclass', 'emnist-bymerge', 'emnist-digits']
"""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence

from .dataset import Dataset
from ..references import is_reference
from .registry import DATASETS
from .user import UserData, load_user_data  # noqa: F401


def list_datasets() -> list[str]:
    """Names of the registered datasets, sorted."""
    return sorted(DATASETS.names())


def register_dataset(source: Any, *, overwrite: bool = False) -> Any:
    """Add a dataset source (anything with ``.name`` and ``.load(data_dir, *, download, progress,
    mirrors)``, e.g. a :class:`~prunekit.data.DatasetSpec`) to the registry."""
    return DATASETS.register(source.name, source, description=getattr(source, "description", ""),
                             overwrite=overwrite)


def load_dataset(name: str = "mnist", data_dir: Optional[os.PathLike | str] = None, *,
                 download: bool = True, progress: bool = True,
                 mirrors: Optional[Sequence[str]] = None) -> Dataset | UserData:
    """Load a registered dataset, downloading its files if they are found nowhere.

    Args:
        name: a name from :func:`list_datasets` (``"mnist"``, ``"fashion-mnist"``...), or user code
            ``FILE.py:FUNCTION`` returning ``(train, test)`` (see :mod:`prunekit.data.user`).
        data_dir: the first folder to search (and the download target when given; it must exist);
            then ``$PRUNEKIT_DATA``, then ``$XDG_CACHE_HOME/prunekit/<name>``
            (default ``~/.cache/prunekit/<name>``); each directly or in ``<name>/``.
        download: fetch missing files from the mirrors; if False, raise instead.
        progress: show a progress bar while downloading.
        mirrors: base URLs to download from, overriding ``$PRUNEKIT_MIRRORS`` and the defaults.

    Returns:
        A :class:`Dataset` of uint8 images ``[N, C, H, W]`` and int64 labels; ``.split("train")``
        gives normalised float inputs.

    Raises:
        UnknownNameError: unknown name.
        ChecksumError: a file (found or downloaded) with the wrong checksum.
        DataError: files found nowhere and not downloadable (the message lists the folders
            searched and the URLs tried), unreadable, or malformed content.
    """
    if is_reference(name):
        return load_user_data(name)
    return DATASETS.get(name).load(data_dir, download=download, progress=progress, mirrors=mirrors)
