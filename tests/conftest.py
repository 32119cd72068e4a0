"""Shared fixtures. The real MNIST files come from $PRUNEKIT_DATA or ../shared/data/mnist."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def find_mnist_dir() -> Path:
    """The folder with the real MNIST files used by tests (CI: ../shared/data/mnist)."""
    env = os.environ.get("PRUNEKIT_DATA")
    candidates = [Path(env)] if env else []
    candidates += [REPO.parent / "shared" / "data" / "mnist"]
    for path in candidates:
        if (path / "t10k-labels-idx1-ubyte.gz").exists() or (path / "mnist" / "t10k-labels-idx1-ubyte.gz").exists():
            return path
    raise RuntimeError(f"the MNIST test files are not in any of {[str(c) for c in candidates]}; set PRUNEKIT_DATA")


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    return find_mnist_dir()


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    from prunekit.data import load_dataset

    return load_dataset("mnist", mnist_dir, download=False, progress=False)


@pytest.fixture(scope="session")
def mnist_slice(mnist):
    """A small, fixed slice of MNIST: 6,000 training and 2,000 test samples (normalised)."""
    x, y = mnist.split("train")
    xt, yt = mnist.split("test")
    return (x[:6000], y[:6000]), (xt[:2000], yt[:2000])
