"""Shared fixtures. The real MNIST files come from $PRUNEKIT_DATA or ../shared/data/mnist (see ../conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST folder (the root conftest.py points $PRUNEKIT_DATA at it)."""
    return Path(os.environ["PRUNEKIT_DATA"])


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


@pytest.fixture(scope="session")
def fashion_dir(mnist_dir) -> Path:
    """The folder with the real Fashion-MNIST files (CI: ../shared/data/fashion-mnist)."""
    for folder in (mnist_dir.resolve().parent / "fashion-mnist", REPO.parent / "shared" / "data" / "fashion-mnist"):
        if (folder / "t10k-labels-idx1-ubyte.gz").exists():
            return folder
    raise RuntimeError("the Fashion-MNIST test files are not beside the MNIST ones nor in ../shared/data")


@pytest.fixture(scope="session")
def baseline(tmp_path_factory, mnist):
    """One trained baseline checkpoint shared by the tests that prune one: LeNet-300-100, 0.3 epochs
    of MNIST (about 90% test accuracy), seed 1. Tests must not modify the folder."""
    from prunekit.study import train_model
    from prunekit.training import TrainConfig

    folder = tmp_path_factory.mktemp("baseline") / "lenet300"
    train_model("lenet300", dataset=mnist, config=TrainConfig(epochs=0.3, seed=1), out=folder, progress=False)
    return folder


@pytest.fixture(scope="session")
def local_points(baseline, mnist_dir, tmp_path_factory):
    """The reference points of ``sweeps.EXECUTOR_SWEEP`` on the shared baseline: the local executor, one thread."""
    from prunekit.study import make_executor, run_sweep
    from sweeps import EXECUTOR_SWEEP

    result = run_sweep(EXECUTOR_SWEEP, tmp_path_factory.mktemp("local"), checkpoint=str(baseline),
                       data_dir=str(mnist_dir), progress=False, measure=False,
                       executor=make_executor("local", cpus_per_job=1))
    assert result.points_run == 8
    return result.points
