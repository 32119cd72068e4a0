"""EMNIST (Cohen et al. 2017): the MNIST-format splits of NIST Special Database 19.

NIST publishes one archive, ``gzip.zip`` (md5 ``58c8d27c78d21e728a6bc7b3cc06412e``), holding every
split as gzipped IDX files; prunekit reads the chosen split's four members straight from the
verified archive. Loose split files (``emnist-balanced-train-images-idx3-ubyte[.gz]``...) are read
too, checked for structure only (no per-file checksum is published). EMNIST stores images
transposed; they are turned to MNIST's orientation. ``letters`` labels (1..26) become 0..25.

Example:
    >>> sorted(n for n in DATASETS.names() if n.startswith("emnist"))[:3]
    ['emnist-balanced', 'emnist-byclass', 'emnist-bymerge']
"""

from __future__ import annotations

import gzip
import hashlib
import string
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from ..errors import ChecksumError, DataError
from .dataset import Dataset
from .download import DEFAULT_TIMEOUT, download_from_mirrors, download_root, find_file, not_found_message, \
    resolve_mirrors, search_folders
from .idx import parse_idx, read_maybe_gzip
from .registry import DATASETS

ARCHIVE, ARCHIVE_MD5 = "gzip.zip", "58c8d27c78d21e728a6bc7b3cc06412e"
PARTS = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
         "test_images": "test-images-idx3-ubyte", "test_labels": "test-labels-idx1-ubyte"}
_MERGED = set("cijklmopsuvwxyz")


@dataclass(frozen=True)
class EmnistSpec:
    """One EMNIST split."""

    split: str
    num_classes: int
    classes: tuple[str, ...]
    mirrors: tuple[str, ...] = ("https://biometrics.nist.gov/cs_links/EMNIST/",)

    @property
    def name(self) -> str:
        return f"emnist-{self.split}"

    @property
    def description(self) -> str:
        return f"EMNIST {self.split} split (NIST SD 19), 28x28 grey, {self.num_classes} classes"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (1, 28, 28)

    def load(self, data_dir=None, *, download: bool = True, progress: bool = True,
             mirrors: Optional[Sequence[str]] = None, timeout: float = DEFAULT_TIMEOUT) -> Dataset:
        """Find (or download) and read the split (see :func:`prunekit.data.load_dataset`)."""
        folders = search_folders("emnist", data_dir)
        for folder in folders:
            if (folder / ARCHIVE).is_file():
                return self._from_archive(folder / ARCHIVE)
        loose = {role: find_file(folders, f"emnist-{self.split}-{part}") for role, part in PARTS.items()}
        if all(loose.values()):
            warnings.warn(f"EMNIST split files have no published checksum: {loose['train_images'].parent} is checked "
                          f"for structure only; keep {ARCHIVE} to have it verified", stacklevel=2)
            return self._dataset({role: (read_maybe_gzip(p)[1], str(p)) for role, p in loose.items()})
        failures = None
        if download:
            target = download_root("emnist", data_dir) / ARCHIVE
            urls = [m.rstrip("/") + "/" + ARCHIVE for m in resolve_mirrors(self.mirrors, mirrors)]
            url, failures = download_from_mirrors(urls, target, progress=progress, timeout=timeout,
                                                  verify=lambda tmp, url: _check_md5(tmp, url))
            if url is not None:
                return self._from_archive(target)
        raise DataError(not_found_message(self.name, [ARCHIVE], [ARCHIVE], folders, failures,
                                          hint=f"NIST's {ARCHIVE} or the four emnist-{self.split}-* files"))

    def _from_archive(self, path: Path) -> Dataset:
        _check_md5(path)
        read = {}
        try:
            with zipfile.ZipFile(path) as archive:
                for role, part in PARTS.items():
                    member = f"gzip/emnist-{self.split}-{part}.gz"
                    read[role] = (gzip.decompress(archive.read(member)), f"{path}:{member}")
        except (zipfile.BadZipFile, KeyError, OSError, EOFError) as exc:
            raise DataError(f"{path}: cannot read the {self.split} split from the archive ({exc})") from None
        return self._dataset(read)

    def _dataset(self, read: dict[str, tuple[bytes, str]]) -> Dataset:
        arrays = {role: parse_idx(data, source=source) for role, (data, source) in read.items()}
        tensors = {}
        for split in ("train", "test"):
            images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"].astype(np.int64)
            if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
                raise DataError(f"{read[f'{split}_images'][1]}: {images.shape} images do not match "
                                f"{labels.shape} labels in {read[f'{split}_labels'][1]}")
            if self.split == "letters":
                labels = labels - 1
            tensors[f"{split}_images"] = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 2, 1)))[:, None]
            tensors[f"{split}_labels"] = torch.from_numpy(labels)
        pixels = tensors["train_images"].to(torch.float32) / 255
        return Dataset(self.name, mean=(float(pixels.mean()),), std=(float(pixels.std()),),
                       num_classes=self.num_classes, classes=self.classes, **tensors)


def _check_md5(path: Path, source: Optional[str] = None) -> None:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != ARCHIVE_MD5:
        where = f"download from {source}" if source else str(path)
        raise ChecksumError(f"{where}: md5 is {digest.hexdigest()}, expected {ARCHIVE_MD5} for NIST's EMNIST "
                            f"{ARCHIVE}: corrupt or not the right file; "
                            f"{'rejected' if source else 'delete it and run again, or replace it'}")


_ALL = tuple(string.digits + string.ascii_uppercase + string.ascii_lowercase)
SPLITS = (
    EmnistSpec("balanced", 47, tuple(c for c in _ALL if not (c.islower() and c in _MERGED))),
    EmnistSpec("byclass", 62, _ALL),
    EmnistSpec("bymerge", 47, tuple(c for c in _ALL if not (c.islower() and c in _MERGED))),
    EmnistSpec("digits", 10, tuple(string.digits)),
    EmnistSpec("letters", 26, tuple(string.ascii_uppercase)),
    EmnistSpec("mnist", 10, tuple(string.digits)),
)
for _spec in SPLITS:
    DATASETS.register(_spec.name, _spec, description=_spec.description)
