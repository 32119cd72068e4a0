"""Datasets that need no download: scikit-learn's bundled digits, and an image folder of the user's.

Example:
    >>> ds = load_digits()
    >>> ds.input_shape, ds.num_classes, len(ds.train_labels) + len(ds.test_labels)
    ((1, 8, 8), 10, 1797)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from ..errors import ConfigError, DataError
from .dataset import Dataset
from .registry import DATASETS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def _held_out(labels: np.ndarray, every: int = 5) -> np.ndarray:
    """A deterministic, stratified test selection: every ``every``-th sample of each class, in order."""
    test = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        test[np.nonzero(labels == c)[0][every - 1::every]] = True
    return test


def _from_arrays(name: str, images: np.ndarray, labels: np.ndarray, test: np.ndarray, classes=()) -> Dataset:
    pixels = images[~test].astype(np.float32) / 255
    channels = images.shape[1]
    mean = tuple(float(pixels[:, c].mean()) for c in range(channels))
    std = tuple(float(pixels[:, c].std()) or 1.0 for c in range(channels))
    return Dataset(name, torch.from_numpy(images[~test].copy()), torch.from_numpy(labels[~test].astype(np.int64)),
                   torch.from_numpy(images[test].copy()), torch.from_numpy(labels[test].astype(np.int64)),
                   mean=mean, std=std, num_classes=int(labels.max()) + 1, classes=tuple(classes))


def load_digits() -> Dataset:
    """scikit-learn's 1,797 handwritten 8x8 digits (values 0-16 scaled to 0-255); every 5th image of each
    class (355) is the test split.

    Raises:
        ConfigError: if scikit-learn is not installed.
    """
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise ConfigError("the digits dataset ships with scikit-learn: pip install scikit-learn") from None
    bunch = sklearn_digits()
    images = np.clip(np.round(bunch.images * 255 / 16), 0, 255).astype(np.uint8)[:, None]
    return _from_arrays("digits", images, bunch.target, _held_out(bunch.target), tuple(map(str, range(10))))


def load_image_folder(root, size: Optional[Sequence[int]] = None) -> Dataset:
    """Images in ``root/<class>/*`` (one sub-folder per class), read with Pillow into memory.

    ``root/train/<class>/`` and ``root/test/<class>/`` give the splits; otherwise every 5th image of
    each class (sorted by name) is held out for testing. Images are converted to RGB (to grey if
    every image is grey) and resized to ``size`` (height, width), by default the first image's size.

    Raises:
        DataError: naming the folder or file that is missing, empty or not an image.
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist")
    splits = [root / "train", root / "test"]
    if all(p.is_dir() for p in splits):
        files = {split.name: _class_files(split) for split in splits}
        classes = sorted(set(files["train"]) | set(files["test"]))
    else:
        per_class = _class_files(root)
        classes = sorted(per_class)
        files = {"all": per_class}
    paths, labels, parts = [], [], []
    for part, per_class in files.items():
        for index, name in enumerate(classes):
            for path in per_class.get(name, []):
                paths.append(path)
                labels.append(index)
                parts.append(part)
    images = []
    for path in paths:
        try:
            with Image.open(path) as image:
                images.append(image.convert("RGB") if image.mode not in ("L", "RGB") else image.copy())
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"{path} is not a readable image ({exc})") from None
    grey = all(im.mode == "L" for im in images)
    height, width = size or (images[0].height, images[0].width)
    arrays = [np.asarray((im if grey else im.convert("RGB")).resize((width, height))) for im in images]
    stacked = np.stack(arrays)
    stacked = stacked[:, None] if grey else stacked.transpose(0, 3, 1, 2)
    labels_arr = np.asarray(labels)
    test = np.asarray([p == "test" for p in parts]) if "all" not in files else _held_out(labels_arr)
    return _from_arrays(f"imagefolder:{root.name}", np.ascontiguousarray(stacked), labels_arr, test, classes)


def _class_files(folder: Path) -> dict[str, list[Path]]:
    found = {d.name: sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
             for d in sorted(folder.iterdir()) if d.is_dir()}
    found = {k: v for k, v in found.items() if v}
    if len(found) < 2:
        raise DataError(f"{folder} needs one sub-folder of images per class (at least 2 classes), found "
                        f"{len(found)} with images")
    return found


@dataclass(frozen=True)
class Digits:
    name: str = "digits"
    description: str = "scikit-learn's handwritten digits: 1,797 images 8x8 grey, 10 classes (no download)"
    input_shape: tuple[int, int, int] = (1, 8, 8)

    def load(self, data_dir=None, **kwargs) -> Dataset:
        return load_digits()


@dataclass(frozen=True)
class ImageFolder:
    name: str = "imagefolder"
    description: str = "your images: --data-dir ROOT with one sub-folder per class (optionally train/ and test/)"

    def load(self, data_dir=None, **kwargs) -> Dataset:
        if data_dir is None:
            raise ConfigError("the imagefolder dataset reads the folder given as --data-dir (data_dir=): "
                              "ROOT/<class>/*.png, or ROOT/train/<class>/ and ROOT/test/<class>/")
        return load_image_folder(data_dir)


for _source in (Digits(), ImageFolder()):
    DATASETS.register(_source.name, _source, description=_source.description)
