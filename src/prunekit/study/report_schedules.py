"""The schedule comparison of a sweep report: accuracy and training cost side by side.

Reads result points; never trains or prunes. A chained schedule's ``train_epochs`` at a
sparsity is everything spent to get there from the dense model (cumulative), so the columns
compare what each schedule paid for each point.

Example:
    >>> points = [{"schedule": s, "method": "weight", "scope": "layer", "sparsity_target": 90.0,
    ...            "test_accuracy": a, "train_epochs": e} for s, a, e in (("oneshot", 0.95, 0), ("finetune", 0.98, 2))]
    >>> print(cost_table(points, "weight"))
    | sparsity % | oneshot | finetune |
    |---:|---:|---:|
    | 90 | 95.00 (0 ep) | **98.00 (2 ep)** |
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable

from ..schedules import SCHEDULES

NEAR_BEST = 0.25
"""A schedule is 'as good' as the best one within this many percentage points."""


def _is_chained(label: str) -> bool:
    base = label.split("+")[0]
    return base in SCHEDULES and SCHEDULES.get(base).chained


def training_spent(points: Iterable[dict[str, Any]]) -> tuple[float, float]:
    """Epochs and seconds of training behind ``points``: a chain's last (cumulative) value,
    the sum over the points of an independent schedule.

    Example:
        >>> training_spent([{"schedule": "gradual", "method": "unit", "scope": "layer",
        ...                  "train_epochs": 3.0, "train_seconds": 20.0}] * 2)
        (6.0, 40.0)
    """
    series: dict[tuple, list] = defaultdict(list)
    for p in points:
        series[(p["schedule"], p["method"], p["scope"])].append(p)
    epochs = seconds = 0.0
    for (label, _, _), pts in series.items():
        total = max if _is_chained(label) else sum
        epochs += total((p.get("train_epochs") or 0.0) for p in pts)
        seconds += total((p.get("train_seconds") or 0.0) for p in pts)
    return epochs, seconds


def _schedule_order(label: str) -> tuple[int, str]:
    order = SCHEDULES.names()
    base = label.split("+")[0]
    return (order.index(base) if base in order else len(order), label)


def _grid(points: list[dict[str, Any]], method: str) -> tuple[list[str], list[float], dict]:
    cells = {(p["schedule"], p["sparsity_target"]): p for p in points if p["method"] == method}
    schedules = sorted({s for s, _ in cells}, key=_schedule_order)
    return schedules, sorted({k for _, k in cells}), cells


def cost_table(points: list[dict[str, Any]], method: str) -> str:
    """A Markdown table for one method: a row per sparsity, a column per schedule, each cell
    ``accuracy % (epochs of training behind it)``; the best accuracy of each row in bold."""
    schedules, ks, cells = _grid(points, method)
    if not schedules:
        return ""
    rows = ["| sparsity % | " + " | ".join(schedules) + " |", "|---:|" + "---:|" * len(schedules)]
    for k in ks:
        accs = {s: cells[(s, k)]["test_accuracy"] for s in schedules if (s, k) in cells}
        best = max(accs.values())
        row = []
        for s in schedules:
            if s not in accs:
                row.append("")
                continue
            text = f"{100 * accs[s]:.2f} ({cells[(s, k)].get('train_epochs') or 0:g} ep)"
            row.append(f"**{text}**" if accs[s] == best else text)
        rows.append(f"| {k:g} | " + " | ".join(row) + " |")
    return "\n".join(rows)


def cost_findings(points: list[dict[str, Any]], method: str, min_sparsity: float = 90.0) -> list[str]:
    """Sentences: at each sparsity >= ``min_sparsity``, the best schedule, and the cheapest one
    within :data:`NEAR_BEST` points of it (the better choice at equal accuracy)."""
    schedules, ks, cells = _grid(points, method)
    lines = []
    for k in (k for k in ks if k >= min_sparsity):
        present = [s for s in schedules if (s, k) in cells]
        if len(present) < 2:
            continue
        acc = {s: 100 * cells[(s, k)]["test_accuracy"] for s in present}
        cost = {s: cells[(s, k)].get("train_epochs") or 0.0 for s in present}
        best = max(present, key=lambda s: (acc[s], -cost[s]))
        cheap = min((s for s in present if acc[s] >= acc[best] - NEAR_BEST), key=lambda s: (cost[s], -acc[s]))
        text = f"- {method} pruning at {k:g}%: best **{best}** {acc[best]:.2f}% after {cost[best]:g} epochs"
        if cheap != best:
            text += f"; **{cheap}** is within {NEAR_BEST:g} point ({acc[cheap]:.2f}%) for {cost[cheap]:g} epochs"
        lines.append(text + ".")
    return lines


def series_costs(points: list[dict[str, Any]]) -> str:
    """A Markdown table of what every (schedule, method) series cost in total."""
    series: dict[tuple, list] = defaultdict(list)
    for p in points:
        series[(p["schedule"], p["method"], p["scope"])].append(p)
    rows = ["| schedule | method | scope | points | epochs | training seconds |", "|---|---|---|---:|---:|---:|"]
    for (label, method, scope), pts in sorted(series.items()):
        epochs, seconds = training_spent(pts)
        rows.append(f"| {label} | {method} | {scope} | {len(pts)} | {epochs:g} | {seconds:.0f} |")
    return "\n".join(rows)
