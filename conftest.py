"""Test set-up shared by the test suite (tests/) and the docstring examples (src/prunekit, run as doctests).

Library calls without ``data_dir=`` (docstring examples, README code) find MNIST through
``$PRUNEKIT_DATA``, which ``make test`` sets; running pytest directly gets the same here.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent


def find_mnist_dir() -> Path:
    """The folder with the real MNIST files used by tests (CI: ../shared/data/mnist)."""
    env = os.environ.get("PRUNEKIT_DATA")
    candidates = [Path(env)] if env else []
    candidates += [REPO.parent / "shared" / "data" / "mnist"]
    for path in candidates:
        if (path / "t10k-labels-idx1-ubyte.gz").exists() or (path / "mnist" / "t10k-labels-idx1-ubyte.gz").exists():
            return path
    raise RuntimeError(f"the MNIST test files are not in any of {[str(c) for c in candidates]}; set PRUNEKIT_DATA")


os.environ["PRUNEKIT_DATA"] = str(find_mnist_dir())


if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs two workers: one torch thread each, not two apiece
    import torch

    torch.set_num_threads(1)
