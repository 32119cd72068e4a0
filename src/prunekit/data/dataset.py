"""A loaded dataset held in memory: uint8 images ``[N, C, H, W]`` and int64 labels, per split.

Example:
    >>> import torch
    >>> images = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
    >>> ds = Dataset("tiny", images, torch.tensor([0, 1, 0, 1]), images[:2], torch.tensor([1, 0]),
    ...              mean=(0.5,), std=(0.25,), num_classes=2)
    >>> x, y = ds.split("train")
    >>> x.shape, x.dtype, float(x[0, 0, 0, 0])
    (torch.Size([4, 1, 8, 8]), torch.float32, -2.0)
    >>> ds.input_shape
    (1, 8, 8)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from ..errors import ConfigError, DataError

SPLITS = ("train", "test")


@dataclass(frozen=True, eq=False)
class Dataset:
    """Images and labels of both splits, and how to normalise them.

    Attributes:
        name: the dataset's name.
        train_images, test_images: uint8 ``[N, C, H, W]``.
        train_labels, test_labels: int64 ``[N]`` in ``0 .. num_classes - 1``.
        mean, std: per-channel statistics of ``images / 255`` (one value per channel).
        num_classes: the number of classes.
        classes: optional class names.
    """

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    mean: Sequence[float]
    std: Sequence[float]
    num_classes: int
    classes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        for split in SPLITS:
            images, labels = getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")
            if images.dtype != torch.uint8 or images.dim() != 4:
                raise DataError(f"{self.name}: {split} images must be uint8 [N, C, H, W], got "
                                f"{images.dtype} {tuple(images.shape)}")
            if labels.dim() != 1 or len(labels) != len(images):
                raise DataError(f"{self.name}: {split} has {len(images)} images but {tuple(labels.shape)} labels")
            if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
                raise DataError(f"{self.name}: {split} labels must be in 0..{self.num_classes - 1}, found "
                                f"{int(labels.min())}..{int(labels.max())}")
        channels = self.train_images.shape[1]
        if len(self.mean) != channels or len(self.std) != channels:
            raise DataError(f"{self.name}: {channels} channels need as many mean/std values, got "
                            f"{list(self.mean)} and {list(self.std)}")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """One sample's shape ``(C, H, W)``, as models receive it."""
        return tuple(self.train_images.shape[1:])

    def split(self, which: str) -> tuple[torch.Tensor, torch.Tensor]:
        """One split ready for a model: ``(x, y)`` with x float32 ``((images / 255) - mean) / std``.

        Raises:
            ConfigError: for a split other than ``"train"`` or ``"test"``.
        """
        if which not in SPLITS:
            raise ConfigError(f"unknown split {which!r}; expected 'train' or 'test'")
        images, labels = getattr(self, f"{which}_images"), getattr(self, f"{which}_labels")
        mean = torch.tensor(self.mean, dtype=torch.float32).reshape(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).reshape(1, -1, 1, 1)
        x = images.to(torch.float32).div_(255.0).sub_(mean).div_(std)
        return x, labels.clone()

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, train={tuple(self.train_images.shape)}, "
                f"test={tuple(self.test_images.shape)}, classes={self.num_classes})")
