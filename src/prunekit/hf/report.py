"""The plot of a language-model sweep: held-out perplexity (log scale) against sparsity, one line per
series, N:M points as their own markers, the dense model dashed.

Example:
    >>> import tempfile
    >>> points = [{"series": "oneshot@wanda", "level": "50%", "sparsity_actual": 50.0, "perplexity": 27.8},
    ...           {"series": "oneshot@wanda", "level": "2:4", "sparsity_actual": 50.0, "perplexity": 61.6}]
    >>> plot_perplexity(points, tempfile.mkdtemp() + "/ppl.png", dense=14.4).stat().st_size > 10000
    True
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from ..storage import save_png


def plot_perplexity(points: Iterable[dict[str, Any]], path: str | Path, *, dense: Optional[float] = None,
                    title: str = "Held-out perplexity vs sparsity") -> Path:
    """Draw ``perplexity`` against ``sparsity_actual`` (percent) per ``series`` and save a PNG at ``path``;
    points whose ``level`` is an N:M pattern are drawn as separate markers. Infinite perplexities
    (``None`` in JSON) are left out. Returns ``path``."""
    lines: dict[str, list[tuple[float, float]]] = defaultdict(list)
    patterns: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for p in points:
        if p.get("perplexity") is None:
            continue
        where = patterns if ":" in str(p["level"]) else lines
        key = (p["series"], p["level"]) if where is patterns else p["series"]
        where[key].append((float(p["sparsity_actual"]), float(p["perplexity"])))
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    colors: dict[str, Any] = {}
    for series, xy in sorted(lines.items()):
        xs, ys = zip(*sorted(xy))
        (line,) = ax.plot(xs, ys, marker="o", markersize=4, label=series)
        colors[series] = line.get_color()
    for (series, level), xy in sorted(patterns.items()):
        xs, ys = zip(*xy)
        ax.scatter(xs, ys, marker="s", s=36, label=f"{series} {level}", zorder=3, color=colors.get(series))
    if dense is not None:
        ax.axhline(dense, color="black", linestyle="--", linewidth=1, label=f"dense ({dense:.2f})")
    ax.set_yscale("log")
    ax.set_xlabel("sparsity (% of the pruned layers' weights)")
    ax.set_ylabel("held-out perplexity (log scale)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7 if len(lines) + len(patterns) > 8 else 8, ncol=1 + (len(lines) + len(patterns)) // 12)
    return save_png(fig, path)
