"""Replicates: the points of a sweep run with several seeds, summarised as mean, standard deviation and n,
and a rule for when two results are within noise.

Two means are **within noise** when they differ by no more than two standard errors of their difference,
``2 * sqrt(s1^2/n1 + s2^2/n2)`` (``s``: the sample standard deviation over seeds); with one seed there is
no estimate of the noise and nothing is called within noise.

Example:
    >>> points = [{"schedule": "oneshot", "method": "weight", "scope": "layer", "sparsity_target": 90.0,
    ...            "seed": s, "test_accuracy": a} for s, a in ((0, 0.97), (1, 0.95), (2, 0.96))]
    >>> [(p["n"], round(p["test_accuracy"], 4), round(p["test_accuracy_std"], 4)) for p in mean_points(points)]
    [(3, 0.96, 0.01)]
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

SERIES = ("schedule", "method", "scope")
SPREAD = ("test_accuracy", "test_loss")
"""Fields whose standard deviation over seeds is kept (``<field>_std``)."""


def has_replicates(points: Iterable[dict[str, Any]]) -> bool:
    """Whether the points come from a sweep with seeds (they carry ``seed``)."""
    return any("seed" in p for p in points)


def mean_points(points: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One point per (schedule, method, scope, sparsity target): every numeric field averaged over its seeds
    (per-layer sparsities too), ``test_accuracy_std`` and ``test_loss_std`` (sample standard deviations, 0 for
    one seed), ``n`` (the seeds) and ``seeds``."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for p in points:
        groups[tuple(p[k] for k in SERIES) + (p["sparsity_target"],)].append(p)
    out = []
    for key in sorted(groups):
        group = groups[key]
        merged: dict[str, Any] = {k: v for k, v in group[0].items() if k not in ("seed", "baseline_id", "config_id")}
        for name, value in group[0].items():
            values = [p.get(name) for p in group]
            if _numeric(value) and all(_numeric(v) for v in values):
                merged[name] = statistics.fmean(values)
        for name in SPREAD:
            values = [p[name] for p in group if _numeric(p.get(name))]
            if values:
                merged[f"{name}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        layers = [p["layer_sparsity"] for p in group if isinstance(p.get("layer_sparsity"), dict)]
        if layers:
            merged["layer_sparsity"] = {n: statistics.fmean(d.get(n, 0.0) for d in layers) for n in layers[0]}
        merged["n"] = len(group)
        merged["seeds"] = sorted(p.get("seed") for p in group if p.get("seed") is not None)
        out.append(merged)
    return out


def noise(a: dict[str, Any], b: dict[str, Any], field: str = "test_accuracy") -> float | None:
    """Two standard errors of the difference of two mean points' ``field`` (None without replicates)."""
    na, nb = a.get("n", 1), b.get("n", 1)
    if na < 2 or nb < 2:
        return None
    return 2.0 * math.sqrt(a[f"{field}_std"] ** 2 / na + b[f"{field}_std"] ** 2 / nb)


def within_noise(a: dict[str, Any], b: dict[str, Any], field: str = "test_accuracy") -> bool:
    """Whether two mean points differ in ``field`` by no more than :func:`noise`.

    Example:
        >>> a = {"test_accuracy": 0.95, "test_accuracy_std": 0.01, "n": 3}
        >>> within_noise(a, {**a, "test_accuracy": 0.96}), within_noise(a, {**a, "test_accuracy": 0.99})
        (True, False)
    """
    bound = noise(a, b, field)
    return bound is not None and abs(a[field] - b[field]) <= bound


def noise_findings(means: list[dict[str, Any]]) -> list[str]:
    """Sentences comparing every two series at the sparsities they share: where they differ beyond noise."""
    series: dict[tuple, dict[float, dict[str, Any]]] = defaultdict(dict)
    for p in means:
        if p["sparsity_target"] > 0:
            series[tuple(p[k] for k in SERIES)][p["sparsity_target"]] = p
    names = sorted(series)
    lines = []
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            shared = sorted(series[first].keys() & series[second].keys())
            if not shared:
                continue
            close = [k for k in shared if within_noise(series[first][k], series[second][k])]
            lines.append(f"- {_name(first)} vs {_name(second)}: they differ beyond noise at "
                         f"{len(shared) - len(close)} of {len(shared)} shared sparsities"
                         + (f"; within noise at {', '.join(f'{k:g}' for k in close)}%." if close else "."))
    return lines


def accuracy_text(point: dict[str, Any]) -> str:
    """``98.12`` or, for a mean point, ``98.12 ± 0.05``."""
    text = f"{100 * point['test_accuracy']:.2f}"
    return text + (f" ± {100 * point['test_accuracy_std']:.2f}" if "test_accuracy_std" in point else "")


def _name(key: tuple) -> str:
    schedule, method, scope = key
    return f"{method} pruning ({schedule}, {scope}-wise)"


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
