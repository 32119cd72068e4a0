"""PNG plots of sweep results (matplotlib, no display needed). Plots read results; they never
train or prune.

Example:
    >>> import tempfile
    >>> points = [{"method": "weight", "sparsity_target": k, "test_accuracy": a} for k, a in ((0, 0.98), (90, 0.95))]
    >>> plot_accuracy(points, tempfile.mkdtemp() + "/acc.png", baseline_accuracy=0.98).stat().st_size > 10000
    True
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from ..storage import save_png


def _lines(points: Iterable[dict[str, Any]], line_key: str,
           x_key: str) -> dict[str, list[tuple[float, float, float | None]]]:
    lines: dict[str, list[tuple[float, float, float | None]]] = defaultdict(list)
    for p in points:
        if p.get(x_key) is not None:
            std = p.get("test_accuracy_std")
            lines[str(p[line_key])].append((float(p[x_key]), 100.0 * p["test_accuracy"],
                                            None if std is None else 100.0 * std))
    return {label: sorted(xy) for label, xy in sorted(lines.items())}


def plot_accuracy(
    points: Iterable[dict[str, Any]],
    path: str | Path,
    *,
    baseline_accuracy: float | None = None,
    line_key: str = "method",
    x_key: str = "sparsity_target",
    x_label: str = "sparsity (% of weights or units pruned)",
    title: str = "Test accuracy vs sparsity",
    log_x: bool = False,
    y_range: tuple[float, float] | None = (0, 100),
) -> Path:
    """Draw test accuracy (%) against ``x_key``, one line per value of ``line_key``, with the
    dense baseline as a dashed line, and save it as a PNG. Mean points of replicates (with
    ``test_accuracy_std``) get a band of ± one standard deviation.

    Args:
        points: result rows (``test_accuracy`` as a fraction).
        path: the PNG to write.
        baseline_accuracy: the dense model's accuracy (a fraction), drawn dashed.
        line_key: the column that names the lines (``method``, ``schedule``...).
        x_key: the column on the x axis.
        x_label, title: axis label and title.
        log_x: logarithmic x axis (for latency or file size).
        y_range: the accuracy axis' limits (``None``: fit the data and the baseline).

    Returns:
        ``path``.
    """
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    for label, xy in _lines(points, line_key, x_key).items():
        xs, ys, stds = zip(*xy)
        banded = all(s is not None for s in stds)
        (line,) = ax.plot(xs, ys, marker="o", markersize=4, label=f"{label}, mean ± std" if banded else label)
        if banded:
            ax.fill_between(xs, [y - s for y, s in zip(ys, stds)], [y + s for y, s in zip(ys, stds)],
                            color=line.get_color(), alpha=0.2, linewidth=0)
    if baseline_accuracy is not None:
        ax.axhline(100.0 * baseline_accuracy, color="black", linestyle="--", linewidth=1,
                   label=f"dense baseline ({100 * baseline_accuracy:.2f}%)")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(x_label)
    ax.set_ylabel("test accuracy (%)")
    if y_range is not None:
        ax.set_ylim(*y_range)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left" if y_range is not None else "best", fontsize="small")
    return save_png(fig, path)
