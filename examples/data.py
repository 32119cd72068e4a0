"""Your own data, for the command line: ``--dataset examples/data.py:digits_loaders``.

A dataset function returns ``(train, test)``: torch Datasets, DataLoaders (batches of
``(inputs, labels)`` tuples, or dicts for Hugging Face models) or ``(x, y)`` tensors. Augmentation is
yours: put it in your Dataset's ``__getitem__`` or your transforms.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, TensorDataset


def digits_loaders(batch_size: int = 64):
    """scikit-learn's 8x8 digits (shipped with scikit-learn, no download) as shuffling DataLoaders."""
    from prunekit.data import load_digits

    data = load_digits()
    x_train, y_train = data.split("train")
    x_test, y_test = data.split("test")
    generator = torch.Generator().manual_seed(0)
    train = DataLoader(TensorDataset(x_train, y_train), batch_size=batch_size, shuffle=True, generator=generator)
    test = DataLoader(TensorDataset(x_test, y_test), batch_size=256)
    return train, test
