"""Registry of datasets (MNIST, Fashion-MNIST): their files, checksums and constants, and loading.

Where files are looked for and how they are downloaded: :mod:`prunekit.data.download`.
The first file found is used and must pass verification: a corrupt file is an error,
never skipped over in favour of another copy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np
import torch

from prunekit.data.download import (DATA_ENV_VAR, DEFAULT_TIMEOUT, MIRRORS_ENV_VAR, fetch_gz,
                                    find_file, not_found_message, resolve_mirrors,
                                    search_folders, search_roots)
from prunekit.data.idx import check_split, parse_idx, read_checked
from prunekit.errors import ConfigError, DataError

__all__ = ["DATA_ENV_VAR", "MIRRORS_ENV_VAR", "Dataset", "DatasetSpec", "FileSpec", "find_files",
           "get_spec", "list_datasets", "load_dataset", "load_from_spec", "register_dataset"]
ROLES = ("train_images", "train_labels", "test_images", "test_labels")


@dataclass(frozen=True)
class FileSpec:
    """One IDX file of a dataset and how to verify it.

    ``sha256`` is the digest of the *decompressed* content, so one check holds for
    ``<file>`` and ``<file>.gz`` however the archive was compressed. ``gz_md5`` is
    the fallback where no such digest is published (Fashion-MNIST): the md5 of the
    canonical ``.gz`` archive, checked when the file found is a ``.gz``.
    """

    filename: str                   # decompressed name, e.g. "train-images-idx3-ubyte"
    sha256: Optional[str] = None
    gz_md5: Optional[str] = None


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset consists of: its four IDX files, mirrors, constants and sizes."""

    name: str
    files: Mapping[str, FileSpec]        # role (see ROLES) -> file
    mirrors: tuple[str, ...]             # base URLs; the file URL is base + filename + ".gz"
    mean: float
    std: float
    n_train: int
    n_test: int
    image_shape: tuple[int, int] = (28, 28)
    num_classes: int = 10


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded dataset: uint8 images ``[N, H, W]`` and int64 labels ``[N]`` per split."""

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    mean: float
    std: float

    def split(self, which: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Return one split ready for a model.

        Args:
            which: ``"train"`` or ``"test"``.

        Returns:
            ``(x, y)``: x float32 ``[N, 1, H, W]`` equal to ``((images / 255) - mean) / std``,
            y int64 ``[N]`` (a copy).

        Example:
            >>> x, y = load_dataset("mnist").split("test")  # doctest: +SKIP
            >>> x.shape, y.dtype  # doctest: +SKIP
            (torch.Size([10000, 1, 28, 28]), torch.int64)
        """
        if which not in ("train", "test"):
            raise ConfigError(f"unknown split {which!r}; expected 'train' or 'test'")
        images, labels = getattr(self, f"{which}_images"), getattr(self, f"{which}_labels")
        x = images.unsqueeze(1).to(torch.float32).div_(255.0).sub_(self.mean).div_(self.std)
        return x, labels.clone()

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, train={tuple(self.train_images.shape)}, "
                f"test={tuple(self.test_images.shape)}, mean={self.mean}, std={self.std})")


def find_files(spec: DatasetSpec, data_dir=None) -> dict[str, Optional[Path]]:
    """Map each role to the first existing ``<file>`` or ``<file>.gz`` (None if nowhere)."""
    folders = search_folders(spec.name, data_dir)
    return {role: find_file(folders, f.filename) for role, f in spec.files.items()}


def load_from_spec(spec: DatasetSpec, data_dir: Optional[os.PathLike | str] = None, *,
                   download: bool = True, progress: bool = True,
                   mirrors: Optional[Sequence[str]] = None,
                   timeout: float = DEFAULT_TIMEOUT) -> Dataset:
    """Locate (or download), verify and load the dataset described by ``spec``.

    Args, Returns, Raises: as :func:`prunekit.data.load_dataset`, with ``spec``
    instead of a registered name, plus ``timeout`` (seconds per download attempt).

    Example:
        >>> ds = load_from_spec(get_spec("mnist"), "../shared/data", download=False)  # doctest: +SKIP
    """
    paths = find_files(spec, data_dir)
    contents = {role: read_verified(p, spec.files[role], spec.name)
                for role, p in paths.items() if p is not None}
    missing = [role for role in ROLES if paths[role] is None]
    if missing:
        fetched = _fetch(spec, missing, data_dir, download, progress, mirrors, timeout)
        contents.update({role: read_verified(p, spec.files[role], spec.name)
                         for role, p in fetched.items()})
        paths.update(fetched)
    arrays = {role: parse_idx(contents[role], source=str(paths[role])) for role in ROLES}
    _check_arrays(spec, arrays, paths)
    tensors = {role: torch.from_numpy(np.array(a, dtype=np.int64 if role.endswith("labels")
                                               else np.uint8)) for role, a in arrays.items()}
    return Dataset(name=spec.name, mean=spec.mean, std=spec.std, **tensors)


def _fetch(spec, missing, data_dir, download, progress, mirrors, timeout) -> dict[str, Path]:
    """Download the missing files into the first search root; one DataError if any fails."""
    by_name = {spec.files[role].filename: role for role in missing}
    fetched, failures = {}, None
    if download:
        fetched, failures = fetch_gz(
            list(by_name), search_roots(spec.name, data_dir)[0],
            resolve_mirrors(spec.mirrors, mirrors), progress=progress, timeout=timeout,
            verify=lambda name, tmp: read_verified(tmp, spec.files[by_name[name]], spec.name,
                                                   downloaded=True))
    if len(fetched) < len(missing):
        raise DataError(not_found_message(
            spec.name, [n for n in by_name if n not in fetched],
            [spec.files[role].filename for role in ROLES],
            search_folders(spec.name, data_dir), failures))
    return {by_name[name]: path for name, path in fetched.items()}


def read_verified(path: Path, fspec: FileSpec, dataset: str, *, downloaded: bool = False) -> bytes:
    """Read ``path`` (gunzipping a ``.gz``), check it against ``fspec``; return the IDX content."""
    return read_checked(path, sha256=fspec.sha256, gz_md5=fspec.gz_md5,
                        what=f"{dataset} file {fspec.filename}", downloaded=downloaded)


def _check_arrays(spec: DatasetSpec, arrays: dict, paths: dict) -> None:
    """Counts, image shape and label range of both splits (DataError naming the file)."""
    for split, count in (("train", spec.n_train), ("test", spec.n_test)):
        check_split(arrays[f"{split}_images"], arrays[f"{split}_labels"], count=count,
                    image_shape=spec.image_shape, num_classes=spec.num_classes,
                    sources=(str(paths[f"{split}_images"]), str(paths[f"{split}_labels"])))


def _idx_files(**digests: dict) -> dict[str, FileSpec]:
    names = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
             "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}
    return {role: FileSpec(names[role], **digests[role]) for role in ROLES}


MNIST = DatasetSpec(
    name="mnist", mean=0.1307, std=0.3081, n_train=60000, n_test=10000,
    mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    files=_idx_files(
        train_images={"sha256": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"},
        train_labels={"sha256": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"},
        test_images={"sha256": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"},
        test_labels={"sha256": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"}))

#: Fashion-MNIST: no trustworthy sha256 of the decompressed files was found in public sources,
#: so the files are checked against the md5 of the canonical .gz archives that Zalando publishes
#: (also in torchvision's FashionMNIST.resources). A decompressed copy cannot be checksummed:
#: it is checked for structure only, with a warning.
FASHION_MNIST = DatasetSpec(
    name="fashion-mnist", mean=0.2860, std=0.3530, n_train=60000, n_test=10000,
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    files=_idx_files(train_images={"gz_md5": "8d4fb7e6c68d591d4c3dfef9ec88bf0d"},
                     train_labels={"gz_md5": "25c81989df183df01b3e8a0aad5dffbe"},
                     test_images={"gz_md5": "bef4ecab320f06d8554ea6380940ec79"},
                     test_labels={"gz_md5": "bb300cfdad3c16e7a12a480ee83cd310"}))

_REGISTRY: dict[str, DatasetSpec] = {spec.name: spec for spec in (MNIST, FASHION_MNIST)}


def register_dataset(spec: DatasetSpec, *, overwrite: bool = False) -> None:
    """Add ``spec`` to the registry under ``spec.name`` (ConfigError if taken, unless ``overwrite``)."""
    if spec.name in _REGISTRY and not overwrite:
        raise ConfigError(f"dataset {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec


def get_spec(name: str) -> DatasetSpec:
    """The registered spec called ``name`` (case and ``_``/``-`` ignored); ConfigError if unknown."""
    key = str(name).strip().lower().replace("_", "-")
    if key not in _REGISTRY:
        raise ConfigError(f"unknown dataset {name!r}; known datasets: {', '.join(list_datasets())}")
    return _REGISTRY[key]


def list_datasets() -> list[str]:
    """Names of the registered datasets, sorted.

    Example:
        >>> list_datasets()
        ['fashion-mnist', 'mnist']
    """
    return sorted(_REGISTRY)


def load_dataset(name: str = "mnist", data_dir: Optional[os.PathLike | str] = None, *,
                 download: bool = True, progress: bool = True,
                 mirrors: Optional[Sequence[str]] = None) -> Dataset:
    """Load a registered dataset, downloading its files if they are found nowhere.

    Args:
        name: a name from :func:`list_datasets` (``"mnist"``, ``"fashion-mnist"``).
        data_dir: the first folder to search (and the download target when given);
            then ``$PRUNEKIT_DATA``, then ``$XDG_CACHE_HOME/prunekit/<name>``
            (default ``~/.cache/prunekit/<name>``); each directly or in ``<name>/``.
        download: fetch missing files from the mirrors; if False, raise instead.
        progress: show a progress bar while downloading.
        mirrors: base URLs to download from, overriding ``$PRUNEKIT_MIRRORS`` and the defaults.

    Returns:
        A :class:`Dataset` of uint8 images and int64 labels; ``.split("train")`` gives
        normalised float inputs.

    Raises:
        ConfigError: unknown name.
        ChecksumError: a file (found or downloaded) with the wrong checksum.
        DataError: files found nowhere and not downloadable (the message lists the
            folders searched and the URLs tried), or malformed IDX content.

    Example:
        >>> ds = load_dataset("mnist", "../shared/data", download=False)  # doctest: +SKIP
        >>> ds.train_images.shape, ds.train_labels.dtype  # doctest: +SKIP
        (torch.Size([60000, 28, 28]), torch.int64)
    """
    return load_from_spec(get_spec(name), data_dir, download=download, progress=progress,
                          mirrors=mirrors)
