"""A matplotlib figure written to disk as a PNG through the one atomic writer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .atomic import atomic_path


def save_png(fig: Any, path: str | Path) -> Path:
    """Write the matplotlib figure ``fig`` to ``path`` as a PNG, atomically, and close it; returns ``path``.

    Example:
        >>> import tempfile, matplotlib
        >>> matplotlib.use("Agg")
        >>> import matplotlib.pyplot as plt
        >>> fig, ax = plt.subplots()
        >>> _ = ax.plot([0, 1], [1, 0])
        >>> save_png(fig, tempfile.mkdtemp() + "/line.png").stat().st_size > 1000
        True
    """
    import matplotlib.pyplot as plt  # matplotlib only when a figure is written

    fig.tight_layout()
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return path
