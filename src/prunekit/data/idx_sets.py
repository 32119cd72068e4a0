"""IDX datasets (MNIST, Fashion-MNIST): their files, checksums and constants, located, verified, loaded.

Where files are looked for and how they are downloaded: :mod:`prunekit.data.download`. Every
file is checked against the sha256 of its *decompressed* content, so one digest holds for the
raw file and for any ``.gz`` of it, however it was compressed (canonical archives or a Linux
distribution's re-compressed ones). The first file found is used and must pass verification:
a corrupt file is an error, never skipped over in favour of another copy.

Example:
    >>> spec = DATASETS.get("fashion-mnist")
    >>> spec.n_train, spec.image_shape, spec.num_classes
    (60000, (28, 28), 10)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np
import torch

from ..errors import DataError
from .dataset import Dataset
from .download import DEFAULT_TIMEOUT, fetch_gz, find_file, not_found_message, resolve_mirrors, \
    download_root, search_folders
from .idx import check_split, parse_idx, read_checked
from .registry import DATASETS

ROLES = ("train_images", "train_labels", "test_images", "test_labels")


@dataclass(frozen=True)
class FileSpec:
    """One IDX file of a dataset: its decompressed name and how to verify it: the sha256 of its
    decompressed content, or (where none is published, KMNIST) the md5 of its canonical ``.gz``."""

    filename: str
    sha256: str | None = None
    gz_md5: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """An IDX dataset: its four files, mirrors, constants and sizes."""

    name: str
    files: Mapping[str, FileSpec]        # role (see ROLES) -> file
    mirrors: tuple[str, ...]             # base URLs; the file URL is base + filename + ".gz"
    mean: float
    std: float
    n_train: int
    n_test: int
    image_shape: tuple[int, int] = (28, 28)
    num_classes: int = 10
    description: str = ""
    classes: tuple[str, ...] = ()

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """One sample's shape ``(1, H, W)``."""
        return (1, *self.image_shape)

    def load(self, data_dir: Optional[os.PathLike | str] = None, *, download: bool = True,
             progress: bool = True, mirrors: Optional[Sequence[str]] = None,
             timeout: float = DEFAULT_TIMEOUT) -> Dataset:
        """Locate (or download), verify and load the dataset (see :func:`prunekit.data.load_dataset`)."""
        return load_from_spec(self, data_dir, download=download, progress=progress, mirrors=mirrors,
                              timeout=timeout)


def find_files(spec: DatasetSpec, data_dir=None) -> dict[str, Optional[Path]]:
    """Map each role to the first existing ``<file>`` or ``<file>.gz`` (None if nowhere)."""
    folders = search_folders(spec.name, data_dir)
    return {role: find_file(folders, f.filename) for role, f in spec.files.items()}


def load_from_spec(spec: DatasetSpec, data_dir: Optional[os.PathLike | str] = None, *,
                   download: bool = True, progress: bool = True,
                   mirrors: Optional[Sequence[str]] = None,
                   timeout: float = DEFAULT_TIMEOUT) -> Dataset:
    """Locate (or download), verify and load the dataset described by ``spec``.

    Args, Returns, Raises: as :func:`prunekit.data.load_dataset`, with ``spec`` instead of a
    registered name, plus ``timeout`` (seconds per download attempt).
    """
    paths = find_files(spec, data_dir)
    contents = {role: read_verified(p, spec.files[role], spec.name)
                for role, p in paths.items() if p is not None}
    missing = [role for role in ROLES if paths[role] is None]
    if missing:
        fetched = _fetch(spec, missing, data_dir, download, progress, mirrors, timeout)
        contents.update({role: read_verified(p, spec.files[role], spec.name) for role, p in fetched.items()})
        paths.update(fetched)
    arrays = {role: parse_idx(contents[role], source=str(paths[role])) for role in ROLES}
    _check_arrays(spec, arrays, paths)
    tensors = {role: torch.from_numpy(np.array(a, dtype=np.int64 if role.endswith("labels") else np.uint8))
               for role, a in arrays.items()}
    for role in ("train_images", "test_images"):
        tensors[role] = tensors[role].unsqueeze(1)
    return Dataset(name=spec.name, mean=(spec.mean,), std=(spec.std,), num_classes=spec.num_classes,
                   classes=spec.classes, **tensors)


def _fetch(spec, missing, data_dir, download, progress, mirrors, timeout) -> dict[str, Path]:
    """Download the missing files into the download folder; one DataError if any fails."""
    by_name = {spec.files[role].filename: role for role in missing}
    fetched, failures = {}, None
    if download:
        fetched, failures = fetch_gz(
            list(by_name), download_root(spec.name, data_dir), resolve_mirrors(spec.mirrors, mirrors),
            progress=progress, timeout=timeout,
            verify=lambda name, tmp, url: read_verified(tmp, spec.files[by_name[name]], spec.name, source=url))
    if len(fetched) < len(missing):
        raise DataError(not_found_message(
            spec.name, [n for n in by_name if n not in fetched], [spec.files[role].filename for role in ROLES],
            search_folders(spec.name, data_dir), failures))
    return {by_name[name]: path for name, path in fetched.items()}


def read_verified(path: Path, fspec: FileSpec, dataset: str, *, source: str | None = None) -> bytes:
    """Read ``path`` (gunzipping a ``.gz``), check its sha256; return the IDX content.

    ``source`` names the file in messages instead of ``path`` (the URL of a download).
    """
    return read_checked(path, sha256=fspec.sha256, gz_md5=fspec.gz_md5, what=f"{dataset} file {fspec.filename}",
                        source=source)


def _check_arrays(spec: DatasetSpec, arrays: dict, paths: dict) -> None:
    """Counts, image shape and label range of both splits (DataError naming the file)."""
    for split, count in (("train", spec.n_train), ("test", spec.n_test)):
        check_split(arrays[f"{split}_images"], arrays[f"{split}_labels"], count=count,
                    image_shape=spec.image_shape, num_classes=spec.num_classes,
                    sources=(str(paths[f"{split}_images"]), str(paths[f"{split}_labels"])))


def idx_files(digest: str = "sha256", **digests: str) -> dict[str, FileSpec]:
    """The four files of an MNIST-layout dataset, from each role's digest (``sha256`` of the decompressed
    content, or ``gz_md5`` of the canonical archive)."""
    names = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
             "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}
    return {role: FileSpec(names[role], **{digest: digests[role]}) for role in ROLES}


MNIST = DatasetSpec(
    name="mnist", mean=0.1307, std=0.3081, n_train=60000, n_test=10000,
    description="MNIST handwritten digits (LeCun et al.), 28x28 grey, 10 classes",
    mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    files=idx_files(
        train_images="ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        train_labels="65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        test_images="0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        test_labels="ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"))

FASHION_MNIST = DatasetSpec(
    name="fashion-mnist", mean=0.2860, std=0.3530, n_train=60000, n_test=10000,
    description="Fashion-MNIST (Zalando), 28x28 grey clothing images, 10 classes",
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
             "Ankle boot"),
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    files=idx_files(
        train_images="c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        train_labels="bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        test_images="5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        test_labels="0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"))

KMNIST = DatasetSpec(
    name="kmnist", mean=0.1918, std=0.3483, n_train=60000, n_test=10000,
    description="Kuzushiji-MNIST (ROIS-CODH, CC BY-SA 4.0): cursive Japanese characters, 28x28 grey, 10 classes",
    classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
    mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
    files=idx_files("gz_md5",  # the published checksums are md5 of the .gz archives
                    train_images="bdb82020997e1d708af4cf47b453dcf7",
                    train_labels="e144d726b3acfaa3e44228e80efcd344",
                    test_images="5c965bf0a639b31b8f53240b1b52f4d7",
                    test_labels="7320c461ea6c1c855c0b718fb2a4b134"))

for _spec in (MNIST, FASHION_MNIST, KMNIST):
    DATASETS.register(_spec.name, _spec, description=_spec.description)
