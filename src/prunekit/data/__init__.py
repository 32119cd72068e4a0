"""Datasets: located on disk (or downloaded), verified by checksum, held in memory as uint8 tensors.

``load_dataset(name).split("train")`` gives float32 inputs ``[N, C, H, W]`` normalised with the
dataset's per-channel mean and std, and int64 labels ``[N]``.

Example:
    >>> from prunekit.data import load_dataset
    >>> ds = load_dataset("mnist", download=False, progress=False)
    >>> x, y = ds.split("test")
    >>> x.shape, y.dtype, ds.input_shape
    (torch.Size([10000, 1, 28, 28]), torch.int64, (1, 28, 28))
"""

from .cifar import CIFAR10, CIFAR100, CifarSpec
from .dataset import Dataset
from .download import DATA_ENV_VAR, MIRRORS_ENV_VAR, download_file, search_folders
from .emnist import EmnistSpec
from .idx import parse_idx, write_idx
from .idx_sets import FASHION_MNIST, KMNIST, MNIST, ROLES, DatasetSpec, FileSpec, find_files, load_from_spec
from .small import load_digits, load_image_folder
from .load import list_datasets, load_dataset, register_dataset
from .registry import DATASETS

__all__ = [
    "CIFAR10", "CIFAR100", "CifarSpec", "DATASETS", "DATA_ENV_VAR", "Dataset", "DatasetSpec", "EmnistSpec",
    "FASHION_MNIST", "FileSpec", "KMNIST", "MIRRORS_ENV_VAR", "MNIST", "ROLES", "download_file", "find_files",
    "list_datasets", "load_dataset", "load_digits", "load_from_spec", "load_image_folder", "parse_idx",
    "register_dataset", "search_folders", "write_idx",
]
