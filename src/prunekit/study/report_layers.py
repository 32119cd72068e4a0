"""The report's per-layer view: how much of each layer every point pruned (for schedules and criteria
that allocate unevenly: global scope, LAMP, per-layer plans, latency targets), and the files of a
sensitivity run (:func:`write_sensitivity`).

Example:
    >>> points = [{"schedule": "oneshot", "method": "weight", "scope": "global", "sparsity_target": 90.0,
    ...            "layer_sparsity": {"fc1": 95.0, "fc2": 70.0}}]
    >>> print(per_layer_table(points, "weight"))
    | schedule | scope | target % | fc1 | fc2 |
    |---|---|---:|---:|---:|
    | oneshot | global | 90 | 95.0 | 70.0 |
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from ..plan import Sensitivity
from ..storage import atomic_write_text
from .plot import plot_accuracy

UNEVEN_POINTS = 1.0
"""A point is shown when its layers' sparsities differ by more than this many percentage points."""
MAX_COLUMNS = 16
"""Layers shown per table; a deeper model's table says how many it leaves out."""


def per_layer_table(points: list[dict[str, Any]], method: str) -> str:
    """One row per point of ``method``, one column per layer: the % of its weights (or units) pruned."""
    chosen = [p for p in points if p["method"] == method and _uneven(p)]
    layers = list(dict.fromkeys(name for p in chosen for name in p["layer_sparsity"]))
    shown = layers[:MAX_COLUMNS]
    head = "| schedule | scope | target % | " + " | ".join(shown) + " |"
    rule = "|---|---|---:|" + "---:|" * len(shown)
    rows = [f"| {p['schedule']} | {p['scope']} | {p['sparsity_target']:g} | "
            + " | ".join(_cell(p["layer_sparsity"].get(name)) for name in shown) + " |"
            for p in sorted(chosen, key=lambda p: (p["schedule"], p["sparsity_target"]))]
    note = [f"\n({len(layers) - len(shown)} more layers in results.json.)"] if len(layers) > len(shown) else []
    return "\n".join([head, rule, *rows, *note])


def per_layer_section(points: list[dict[str, Any]]) -> list[str]:
    """The report's per-layer section: the points whose layers were pruned unevenly (none: no section)."""
    methods = sorted({p["method"] for p in points if _uneven(p)})
    if not methods:
        return []
    parts = ["## Per layer\n",
             "Percent of each pruned layer's weights (weight pruning) or units (unit pruning) removed at every "
             "point.\n"]
    for method in methods:
        parts += [f"### {method} pruning\n", per_layer_table(points, method), ""]
    return parts


def _uneven(point: dict[str, Any]) -> bool:
    values = list((point.get("layer_sparsity") or {}).values())
    return len(values) > 1 and max(values) - min(values) > UNEVEN_POINTS


def _cell(value: Any) -> str:
    return "" if value is None else f"{value:.1f}"


def write_sensitivity(curves: Sensitivity, folder: str | Path) -> list[Path]:
    """``sensitivity.json``, ``sensitivity.csv`` and ``sensitivity.png`` (one curve per layer, dense dashed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "sensitivity.json", json.dumps(curves.to_dict(), indent=2))
    buffer = io.StringIO()
    columns = list(curves.rows[0]) if curves.rows else ["layer", "sparsity", "accuracy"]
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(curves.rows)
    atomic_write_text(folder / "sensitivity.csv", buffer.getvalue())
    points = [{"layer": r["layer"], "sparsity_target": r["sparsity"], "test_accuracy": r["accuracy"]}
              for r in curves.rows]
    plot_accuracy(points, folder / "sensitivity.png", baseline_accuracy=curves.dense_accuracy, line_key="layer",
                  x_label=f"sparsity of one layer ({'weights' if curves.method == 'weight' else 'units'} %)",
                  title="Validation accuracy with one layer pruned", y_range=None)
    return [folder / "sensitivity.json", folder / "sensitivity.csv", folder / "sensitivity.png"]
