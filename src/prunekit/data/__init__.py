"""Datasets: MNIST and Fashion-MNIST from IDX files, located, verified (checksums) and loaded.

``load_dataset(name).split("train")`` gives float32 inputs ``[N, 1, 28, 28]``, normalised
with the dataset's mean and std, and int64 labels ``[N]``.

Example:
    >>> from prunekit.data import load_dataset
    >>> ds = load_dataset("mnist", download=False)  # doctest: +SKIP
    >>> x, y = ds.split("train")  # doctest: +SKIP
"""

from prunekit.data.datasets import (FASHION_MNIST, MNIST, ROLES, Dataset, DatasetSpec, FileSpec,
                                    find_files, get_spec, list_datasets, load_dataset,
                                    load_from_spec, register_dataset)
from prunekit.data.download import (DATA_ENV_VAR, MIRRORS_ENV_VAR, download_file,
                                    search_folders)
from prunekit.data.idx import parse_idx, write_idx

__all__ = [
    "DATA_ENV_VAR", "MIRRORS_ENV_VAR", "ROLES", "MNIST", "FASHION_MNIST",
    "Dataset", "DatasetSpec", "FileSpec",
    "load_dataset", "load_from_spec", "list_datasets", "get_spec", "register_dataset",
    "find_files", "search_folders", "download_file", "parse_idx", "write_idx",
]
