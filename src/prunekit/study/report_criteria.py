"""The report's comparison of criteria (series ``SCHEDULE@CRITERION``) at equal MACs: a table in the
style of the DepGraph paper (accuracy, its change, MACs and measured speed-up per level), plots of
accuracy against MACs and against measured latency, and findings computed from the points.

Example:
    >>> points = [{"schedule": f"finetune@{c}", "method": "unit", "sparsity_target": 40.0, "test_accuracy": a,
    ...            "flops_effective": 50, "flops_dense": 100, "params_nonzero": 5, "params_total": 10,
    ...            "latency_b1_ratio": 0.8, "latency_b256_ratio": 0.5}
    ...           for c, a in (("l2", 0.90), ("random", 0.88), ("taylor", 0.91))]
    >>> print(criteria_findings(points, 0.92)[0])
    - At 2.00x fewer MACs (40% of the units), the best criterion is **taylor** (91.00%, -1.00 points); taylor beats l2 (90.00%) and random (88.00%).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from .plot import plot_accuracy
from .series_names import series_criterion

DATA_DRIVEN = ("taylor", "learned")
CONTROLS = ("l2", "random")


def criteria_points(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The points of series that name a criterion, when at least two criteria are compared."""
    named = [p for p in points if series_criterion(p["schedule"]) and p["sparsity_target"] > 0]
    return named if len({series_criterion(p["schedule"]) for p in named}) > 1 else []


def _levels(points):
    levels = defaultdict(list)
    for p in points:
        levels[(p["method"], p["sparsity_target"])].append(p)
    return dict(sorted(levels.items()))


def _macs(p) -> float:
    return p["flops_effective"] / p["flops_dense"] if p.get("flops_dense") else float("nan")


def criteria_table(points: list[dict[str, Any]], baseline_accuracy: float) -> str:
    """One row per (level, criterion): accuracy, its change, MACs and parameters left, measured speed-ups."""
    head = ("| level | series | test acc. % | change (points) | MACs x dense | params x dense | speed-up b1 "
            "| speed-up b256 |\n|---|---|---:|---:|---:|---:|---:|---:|")
    rows = []
    for (method, k), pts in _levels(points).items():
        for p in sorted(pts, key=lambda p: -p["test_accuracy"]):
            b1, b256 = p.get("latency_b1_ratio"), p.get("latency_b256_ratio")
            rows.append(
                f"| {method} {k:g}% ({1 / _macs(p):.2f}x MACs) | {p['schedule']} | {100 * p['test_accuracy']:.2f} | "
                f"{100 * (p['test_accuracy'] - baseline_accuracy):+.2f} | {_macs(p):.3f} | "
                f"{p['params_nonzero'] / p['params_total']:.3f} | {'' if not b1 else f'{1 / b1:.2f}x'} | "
                f"{'' if not b256 else f'{1 / b256:.2f}x'} |")
    return "\n".join([head, *rows])


def criteria_findings(points: list[dict[str, Any]], baseline_accuracy: float) -> list[str]:
    """Per level: the best criterion, and whether the data-driven ones (taylor, learned) beat l2 and random."""
    lines = []
    for (method, k), pts in _levels(points).items():
        by = {series_criterion(p["schedule"]): p["test_accuracy"] for p in pts}
        best = max(by, key=by.get)
        text = (f"- At {1 / _macs(pts[0]):.2f}x fewer MACs ({k:g}% of the {'units' if method == 'unit' else 'weights'}), "
                f"the best criterion is **{best}** ({100 * by[best]:.2f}%, "
                f"{100 * (by[best] - baseline_accuracy):+.2f} points)")
        controls = [c for c in CONTROLS if c in by]
        verdicts = []
        for name in (c for c in DATA_DRIVEN if c in by):
            beaten = [c for c in controls if by[name] > by[c]]
            lost = [c for c in controls if by[name] <= by[c]]
            if beaten and not lost:
                verdicts.append(f"{name} beats " + " and ".join(f"{c} ({100 * by[c]:.2f}%)" for c in beaten))
            elif lost:
                verdicts.append(f"{name} ({100 * by[name]:.2f}%) does **not** beat "
                                + " and ".join(f"{c} ({100 * by[c]:.2f}%)" for c in lost))
        lines.append(text + ("; " + "; ".join(verdicts) if verdicts else "") + ".")
    return lines


def criteria_sections(points: list[dict[str, Any]], baseline_accuracy: float, folder: Path) -> list[str]:
    """The report's criteria section and its plots (empty unless two or more criteria are compared)."""
    chosen = criteria_points(points)
    if not chosen:
        return []
    lines = [{**p, "macs_ratio": _macs(p)} for p in chosen]
    plot_accuracy(lines, folder / "accuracy_vs_macs.png", baseline_accuracy=baseline_accuracy, line_key="schedule",
                  x_key="macs_ratio", x_label="MACs x dense (lower: fewer)", y_range=None,
                  title="Test accuracy vs MACs, one line per criterion")
    parts = ["## Criteria at equal MACs\n",
             "Every criterion prunes the same number of units per group at each level, so the MACs match; each "
             "point then gets the same recovery. Speed-ups are the dense latency over the compact model's, "
             "measured in the same run on this machine's CPU.\n",
             *criteria_findings(chosen, baseline_accuracy), "", criteria_table(chosen, baseline_accuracy), "",
             "![accuracy vs MACs](accuracy_vs_macs.png)\n"]
    if any(p.get("latency_b256_ratio") for p in chosen):
        plot_accuracy(chosen, folder / "accuracy_vs_latency_by_criterion.png", baseline_accuracy=baseline_accuracy,
                      line_key="schedule", x_key="latency_b256_ratio", y_range=None,
                      x_label="CPU latency at batch 256, x dense (compact model; lower is faster)",
                      title="Test accuracy vs measured latency, one line per criterion")
        parts.append("![accuracy vs latency by criterion](accuracy_vs_latency_by_criterion.png)\n")
    return parts
