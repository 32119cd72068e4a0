"""CIFAR-10 and CIFAR-100 from their **binary** distributions (never the pickled Python version).

The archive (``cifar-10-binary.tar.gz``, ``cifar-100-binary.tar.gz``) is checked against the md5
the dataset's page publishes, and its expected members are read in place (no extraction of
arbitrary paths). An already extracted folder (``cifar-10-batches-bin/``, ``cifar-100-binary/``)
is read too; it has no published checksum, so its files are checked for size and labels only.
Records are fixed length: CIFAR-10 ``<label><3072 pixels>``, CIFAR-100 ``<coarse><fine><3072 pixels>``
with the pixels as three 32x32 planes (R, G, B).

Example:
    >>> CIFAR10.input_shape, CIFAR100.num_classes
    ((3, 32, 32), 100)
"""

from __future__ import annotations

import hashlib
import tarfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from ..errors import ChecksumError, DataError
from .dataset import Dataset
from .download import DEFAULT_TIMEOUT, download_from_mirrors, download_root, not_found_message, resolve_mirrors, \
    search_folders
from .registry import DATASETS

PIXELS = 3 * 32 * 32


@dataclass(frozen=True)
class CifarSpec:
    """One CIFAR dataset: its archive, the members holding each split, and its record layout."""

    name: str
    archive: str
    md5: str
    folder: str
    train_members: tuple[str, ...]
    test_members: tuple[str, ...]
    label_bytes: int
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    mirrors: tuple[str, ...]
    description: str
    classes: tuple[str, ...] = ()

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (3, 32, 32)

    def load(self, data_dir=None, *, download: bool = True, progress: bool = True,
             mirrors: Optional[Sequence[str]] = None, timeout: float = DEFAULT_TIMEOUT) -> Dataset:
        """Find (or download) and read the dataset (see :func:`prunekit.data.load_dataset`)."""
        folders = search_folders(self.name, data_dir)
        for folder in folders:
            if (folder / self.archive).is_file():
                return self._from_archive(folder / self.archive)
            if (folder / self.folder).is_dir():
                return self._from_folder(folder / self.folder)
        failures = None
        if download:
            target = download_root(self.name, data_dir) / self.archive
            urls = [m.rstrip("/") + "/" + self.archive for m in resolve_mirrors(self.mirrors, mirrors)]
            url, failures = download_from_mirrors(urls, target, progress=progress, timeout=timeout,
                                                  verify=lambda tmp, url: self._check_md5(tmp, url))
            if url is not None:
                return self._from_archive(target)
        raise DataError(not_found_message(self.name, [self.archive], [self.archive], folders, failures,
                                          hint=f"the binary archive {self.archive} or its extracted folder "
                                               f"{self.folder}/"))

    def _check_md5(self, path: Path, source: Optional[str] = None) -> None:
        digest = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        if digest.hexdigest() != self.md5:
            where = f"download from {source}" if source else str(path)
            raise ChecksumError(f"{where}: md5 is {digest.hexdigest()}, expected {self.md5} for {self.archive}: the "
                                f"archive is corrupt or not the right one; "
                                f"{'rejected' if source else 'delete it and run again, or replace it'}")

    def _from_archive(self, path: Path) -> Dataset:
        self._check_md5(path)
        try:
            with tarfile.open(path, "r:gz") as tar:
                read = {m: _member(tar, f"{self.folder}/{m}", path) for m in (*self.train_members, *self.test_members)}
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(f"{path}: cannot read the archive ({exc})") from None
        return self._dataset({m: (data, f"{path}:{self.folder}/{m}") for m, data in read.items()})

    def _from_folder(self, folder: Path) -> Dataset:
        warnings.warn(f"{folder}: no checksum is published for the extracted files, so only their sizes and labels "
                      f"are checked; keep {self.archive} to have them verified", stacklevel=3)
        read = {}
        for member in (*self.train_members, *self.test_members):
            path = folder / member
            try:
                read[member] = (path.read_bytes(), str(path))
            except OSError as exc:
                raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
        return self._dataset(read)

    def _dataset(self, read: dict[str, tuple[bytes, str]]) -> Dataset:
        parts = {split: [self._records(*read[m]) for m in members]
                 for split, members in (("train", self.train_members), ("test", self.test_members))}
        tensors = {}
        for split, arrays in parts.items():
            images = np.concatenate([a for a, _ in arrays])
            labels = np.concatenate([b for _, b in arrays])
            tensors[f"{split}_images"] = torch.from_numpy(images.reshape(-1, 3, 32, 32).copy())
            tensors[f"{split}_labels"] = torch.from_numpy(labels.astype(np.int64))
        return Dataset(self.name, mean=self.mean, std=self.std, num_classes=self.num_classes, classes=self.classes,
                       **tensors)

    def _records(self, data: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
        size = self.label_bytes + PIXELS
        if len(data) == 0 or len(data) % size:
            raise DataError(f"{source}: {len(data)} bytes is not a whole number of {size}-byte {self.name} records "
                            f"(label{'s' if self.label_bytes > 1 else ''} + 3x32x32 pixels): truncated or not this file")
        records = np.frombuffer(data, dtype=np.uint8).reshape(-1, size)
        labels = records[:, self.label_bytes - 1]
        if int(labels.max()) >= self.num_classes:
            raise DataError(f"{source}: label {int(labels.max())} out of range 0..{self.num_classes - 1}")
        return records[:, self.label_bytes:], labels


def _member(tar: tarfile.TarFile, name: str, path: Path) -> bytes:
    try:
        info = tar.getmember(name)
    except KeyError:
        raise DataError(f"{path} has no member {name}; is it the binary version of the dataset?") from None
    if not info.isfile():
        raise DataError(f"{path}: {name} is not a regular file")
    handle = tar.extractfile(info)
    return handle.read()


CIFAR10 = CifarSpec(
    name="cifar10", archive="cifar-10-binary.tar.gz", md5="c32a1d4ab5d03f1284b67883e8d87530",
    folder="cifar-10-batches-bin", train_members=tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    test_members=("test_batch.bin",), label_bytes=1, num_classes=10,
    mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
    mirrors=("https://www.cs.toronto.edu/~kriz/",),
    description="CIFAR-10 (Krizhevsky 2009), 32x32 RGB, 10 classes, binary version",
    classes=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"))
CIFAR100 = CifarSpec(
    name="cifar100", archive="cifar-100-binary.tar.gz", md5="03b5dce01913d631647c71ecec9e9cb8",
    folder="cifar-100-binary", train_members=("train.bin",), test_members=("test.bin",), label_bytes=2,
    num_classes=100, mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762),
    mirrors=("https://www.cs.toronto.edu/~kriz/",),
    description="CIFAR-100 (Krizhevsky 2009), 32x32 RGB, 100 fine classes, binary version")

for _spec in (CIFAR10, CIFAR100):
    DATASETS.register(_spec.name, _spec, description=_spec.description)

__all__ = ["CIFAR10", "CIFAR100", "CifarSpec"]
