"""``load_dataset(name)``: any registered dataset, by name.

Example:
    >>> [name for name in list_datasets() if 'mnist' in name][:4]
    ['emnist-balanced', 'emnist-byclass', 'emnist-bymerge', 'emnist-digits']
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence

from .dataset import Dataset
from .download import DATA_ENV_VAR
from ..errors import DataError
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
        data_dir: the first folder to search (and the download target when given); it must be an
            existing folder (a mistyped path is an error, never a fall-back to the other places); then
            ``$PRUNEKIT_DATA``, then ``$XDG_CACHE_HOME/prunekit/<name>`` (default
            ``~/.cache/prunekit/<name>``); each directly or in ``<name>/``.
        download: fetch missing files from the mirrors; if False, raise instead.
        progress: show a progress bar while downloading.
        mirrors: base URLs to download from, overriding ``$PRUNEKIT_MIRRORS`` and the defaults.

    Returns:
        A :class:`Dataset` of uint8 images ``[N, C, H, W]`` and int64 labels; ``.split("train")``
        gives normalised float inputs.

    Raises:
        UnknownNameError: unknown name.
        ChecksumError: a file (found or downloaded) with the wrong checksum.
        DataError: a ``data_dir`` that is not an existing folder; files found nowhere and not
            downloadable (the message lists the folders searched and the URLs tried), unreadable, or
            malformed content.
    """
    if is_reference(name):
        return load_user_data(name)
    if data_dir is not None:
        check_data_dir(data_dir)
    return DATASETS.get(name).load(data_dir, download=download, progress=progress, mirrors=mirrors)


def check_data_dir(data_dir: os.PathLike | str) -> None:
    """Raise a DataError unless ``data_dir`` (the user's ``--data-dir``) is an existing folder."""
    folder = Path(data_dir).expanduser()
    if not folder.is_dir():
        problem = "is not a folder" if folder.exists() else "does not exist"
        raise DataError(f"data_dir (--data-dir) is {folder.absolute()}, which {problem}; point it at the folder "
                        f"that holds the dataset's files (or leave it out to search ${DATA_ENV_VAR} and the cache)")
