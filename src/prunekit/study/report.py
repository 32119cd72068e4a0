"""REPORT.md for a sweep folder: the table, the plots, the config and findings computed from
the data. Reads result files; never trains or prunes.

Example:
    >>> import tempfile, pathlib
    >>> from prunekit.study.results import write_tables
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> points = [{"schedule": "oneshot", "method": "weight", "scope": "layer", "sparsity_target": k,
    ...            "sparsity_actual": k, "weight_sparsity_all": k, "params_nonzero": 100 - int(k),
    ...            "test_accuracy": acc, "seconds": 0.1} for k, acc in ((0.0, 0.98), (90.0, 0.97), (99.0, 0.4))]
    >>> write_tables(points, folder)
    >>> path = write_report(folder, baseline_accuracy=0.98, config={"model": "mlp", "dataset": "mnist"})
    >>> [line for line in path.read_text().splitlines() if line.startswith("- **")]
    ['- **weight pruning (oneshot, layer-wise)** stays within 1 point of the dense 98.00% up to 90% sparsity; at 99% it has 40.00%; it collapses below 50% at 99% (40.00%).']
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..storage import atomic_write_text
from .plot import plot_accuracy
from .report_criteria import criteria_sections
from .report_layers import per_layer_section
from .replicates import accuracy_text, has_replicates, mean_points, noise, noise_findings, within_noise
from .report_schedules import cost_findings, cost_table, series_costs
from .results import read_results

KEEP_POINTS = 1.0
"""A method 'keeps accuracy' while it stays within this many percentage points of the baseline."""


def _series(points: Iterable[dict[str, Any]]) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    series: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for p in points:
        series[(p["schedule"], p["method"], p["scope"])].append(p)
    return {k: sorted(v, key=lambda p: p["sparsity_target"]) for k, v in sorted(series.items())}


def findings(points: list[dict[str, Any]], baseline_accuracy: float) -> list[str]:
    """Sentences computed from the results: how far each method keeps accuracy, where it
    collapses, and how the methods compare at shared sparsities."""
    lines = []
    base = 100 * baseline_accuracy
    for (schedule, method, scope), pts in _series(points).items():
        name = f"{method} pruning ({schedule}, {scope}-wise)"
        kept = [p for p in pts if 100 * p["test_accuracy"] >= base - KEEP_POINTS]
        last_kept = max((p["sparsity_target"] for p in kept), default=None)
        below = [p for p in pts if 100 * p["test_accuracy"] < base - KEEP_POINTS]
        collapse = next((p for p in pts if p["test_accuracy"] < 0.5), None)
        text = f"- **{name}** stays within {KEEP_POINTS:g} point of the dense {base:.2f}%"
        text += f" up to {last_kept:g}% sparsity" if last_kept is not None else " at no tested sparsity"
        if below:
            first = below[0]
            text += f"; at {first['sparsity_target']:g}% it has {100 * first['test_accuracy']:.2f}%"
        if collapse is not None:
            text += (f"; it collapses below 50% at {collapse['sparsity_target']:g}% "
                     f"({100 * collapse['test_accuracy']:.2f}%)")
        lines.append(text + ".")
    lines += _comparisons(points)
    return lines


def _comparisons(points: list[dict[str, Any]]) -> list[str]:
    by_k: dict[float, dict[str, dict[str, Any]]] = defaultdict(dict)
    for p in points:
        if p["schedule"] == "oneshot":
            by_k[p["sparsity_target"]][p["method"]] = p
    shared = [k for k, pts in by_k.items() if {"weight", "unit"} <= pts.keys() and k > 0]
    if not shared:
        return []
    gap_k = max(shared, key=lambda k: by_k[k]["weight"]["test_accuracy"] - by_k[k]["unit"]["test_accuracy"])
    wp, up = by_k[gap_k]["weight"], by_k[gap_k]["unit"]
    w, u = wp["test_accuracy"], up["test_accuracy"]
    bound = noise(wp, up)
    verdict = "" if bound is None else (f"; {'within' if within_noise(wp, up) else 'beyond'} noise "
                                        f"(2 standard errors: {100 * bound:.2f} points)")
    return [f"- One-shot, the largest gap between the methods is at {gap_k:g}% sparsity: weight pruning "
            f"{accuracy_text(wp)}% vs unit pruning {accuracy_text(up)}% ({100 * (w - u):+.2f} points{verdict})."]


def results_table(points: list[dict[str, Any]]) -> str:
    """A Markdown table of the points (file size and latency when measured).

    The target and the actual sparsity are over the pruned layers (weights, or units for unit
    pruning); the next column gives the zero weights over all layers, the output layer included.
    """
    head = ("| schedule | method | scope | target % | actual % (pruned layers) | weights zero % (all layers) "
            f"| non-zero weights | test acc. %{' (mean ± std)' if points and 'n' in points[0] else ''} | train epochs | train s | seconds | file KB | latency b1 x dense "
            "| latency b256 x dense |\n"
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = [
        f"| {p['schedule']} | {p['method']} | {p['scope']} | {p['sparsity_target']:g} | "
        f"{p['sparsity_actual']:.2f} | {p.get('weight_sparsity_all', float('nan')):.2f} | "
        f"{p['params_nonzero']:,.0f} | {accuracy_text(p)} | "
        f"{p.get('train_epochs') or 0:g} | {p.get('train_seconds') or 0:.1f} | {p['seconds']:.2f} | "
        f"{_fmt(p.get('file_bytes'), 1e-3, '.0f')} | {_fmt(p.get('latency_b1_ratio'), 1, '.2f')} | "
        f"{_fmt(p.get('latency_b256_ratio'), 1, '.2f')} |"
        for p in points
    ]
    return "\n".join([head, *rows])


def write_plots(points: list[dict[str, Any]], folder: Path, baseline_accuracy: float) -> list[str]:
    """``accuracy_vs_sparsity.png`` (a line per method, or per method and schedule) and one
    ``accuracy_vs_sparsity_<method>.png`` per method with a line per schedule. Returns the names."""
    several = len({p["schedule"] for p in points}) > 1
    lines = [{**p, "line": f"{p['method']} ({p['schedule']})" if several else p["method"]} for p in points]
    plot_accuracy(lines, folder / "accuracy_vs_sparsity.png", baseline_accuracy=baseline_accuracy, line_key="line")
    names = ["accuracy_vs_sparsity.png"]
    for method in sorted({p["method"] for p in points}):
        name = f"accuracy_vs_sparsity_{method}.png"
        plot_accuracy([p for p in points if p["method"] == method], folder / name, line_key="schedule",
                      baseline_accuracy=baseline_accuracy,
                      title=f"{method} pruning: test accuracy vs sparsity by schedule")
        names.append(name)
    measured = [p for p in lines if p.get("latency_b256_ratio") is not None]
    if measured:
        plot_accuracy(measured, folder / "accuracy_vs_latency.png", baseline_accuracy=baseline_accuracy,
                      line_key="line", x_key="latency_b256_ratio", log_x=True,
                      x_label="CPU latency at batch 256, x dense (compact + sparse kernels; lower is faster)",
                      title="Test accuracy vs measured latency")
        plot_accuracy(measured, folder / "accuracy_vs_file_size.png", baseline_accuracy=baseline_accuracy,
                      line_key="line", x_key="file_bytes", log_x=True,
                      x_label="compressed file size (bytes, sparse export of the compact model)",
                      title="Test accuracy vs file size")
        names += ["accuracy_vs_latency.png", "accuracy_vs_file_size.png"]
    return names


def tradeoff_section(points: list[dict[str, Any]]) -> list[str]:
    """Plots and a sentence on what pruning buys in size and speed (empty if not measured)."""
    measured = [p for p in points if p.get("latency_b256_ratio") is not None and p.get("file_bytes")]
    if not measured:
        return compressed_lines(points)
    smallest = min(measured, key=lambda p: p["file_bytes"])
    fastest = min(measured, key=lambda p: p["latency_b256_ratio"])
    return [*compressed_lines(points),
        "## What it buys: size and speed\n",
        "Each point's compact model (dead units removed) with sparse kernels where measured faster, "
        "saved as a sparse file; latency ratios are medians measured against the dense model in the "
        "same run.\n",
        f"- Smallest file: {smallest['file_bytes']:,.0f} bytes ({smallest['method']} pruning, {smallest['schedule']}, "
        f"{smallest['sparsity_target']:g}%) at {100 * smallest['test_accuracy']:.2f}% accuracy.",
        f"- Fastest at batch 256: {fastest['latency_b256_ratio']:.3f}x the dense latency ({fastest['method']} "
        f"pruning, {fastest['schedule']}, {fastest['sparsity_target']:g}%) at "
        f"{100 * fastest['test_accuracy']:.2f}% accuracy.\n",
        "![accuracy vs latency](accuracy_vs_latency.png)\n",
        "![accuracy vs file size](accuracy_vs_file_size.png)\n",
    ]


def compressed_lines(points: list[dict[str, Any]]) -> list[str]:
    """What Deep Compression made of the points (``--compress-bits``), as a table (empty when not asked)."""
    coded = [p for p in points if p.get("compressed_bytes")]
    if not coded:
        return []
    rows = [f"| {p['schedule']} | {p['method']} | {p['sparsity_target']:g} | {p['file_bytes'] / 1e3 if p.get('file_bytes') else float('nan'):.1f} | "
            f"{p['compressed_bytes'] / 1e3:.1f} | {p['compressed_ratio']:.1f} | {100 * p['test_accuracy']:.2f} | "
            f"{100 * p['compressed_test_accuracy']:.2f} |" for p in coded]
    return ["## Compressed (weight sharing + entropy coding, no fine-tuning)\n",
            "| schedule | method | target % | sparse file KB | compressed KB | x smaller than fp32 | test acc. % | "
            "compressed acc. % |\n|---|---|---:|---:|---:|---:|---:|---:|", *rows, ""]


def schedule_sections(points: list[dict[str, Any]]) -> list[str]:
    """The report's comparison of schedules at equal cost (empty with a single schedule)."""
    if len({p["schedule"] for p in points}) < 2:
        return []
    parts = ["## Schedules at equal cost\n",
             "Each cell: test accuracy % (epochs of training spent to reach that point from the dense "
             "model; cumulative for chained schedules). Best per row in bold.\n"]
    for method in sorted({p["method"] for p in points}):
        parts += [f"### {method} pruning\n", *cost_findings(points, method), "", cost_table(points, method), "",
                  f"![{method} pruning by schedule](accuracy_vs_sparsity_{method}.png)\n"]
    parts += ["### Training spent per series\n", series_costs(points), ""]
    return parts


def write_report(
    folder: str | Path,
    *,
    baseline_accuracy: float,
    config: dict[str, Any],
    timing: str = "",
    baseline_accuracies: Sequence[float] = (),
) -> Path:
    """Write the plots (see :func:`write_plots`) and ``REPORT.md`` into ``folder`` from its results.

    A sweep with seeds is reported by its means over the seeds (:func:`~.replicates.mean_points`), with
    standard deviations, bands on the plots and which differences are within noise;
    ``baseline_accuracies`` then gives every replicate's baseline (``baseline_accuracy`` is their mean).
    """
    folder = Path(folder)
    points = read_results(folder)
    replicated = has_replicates(points)
    if replicated:
        points = mean_points(points)
    write_plots(points, folder, baseline_accuracy)
    parts = [
        "# Pruning sweep report\n",
        f"Dense baseline: **{_baseline_text(baseline_accuracy, baseline_accuracies)}** test accuracy "
        f"({config.get('model')}, {config.get('dataset')}).\n",
        _sparsity_note(config), "",
        *(_replicates_note(points) if replicated else []),
        "## Findings\n", *findings(points, baseline_accuracy), *(noise_findings(points) if replicated else []), "",
        "## Accuracy vs sparsity\n", "![accuracy vs sparsity](accuracy_vs_sparsity.png)\n",
        *schedule_sections(points),
        *criteria_sections(points, baseline_accuracy, folder),
        *tradeoff_section(points),
        *per_layer_section(points),
        "## Results\n", results_table(points), "",
    ]
    if timing:
        parts += ["## Timing\n", timing, ""]
    parts += ["## Config\n", "```json", _json(config), "```", ""]
    path = folder / "REPORT.md"
    atomic_write_text(path, "\n".join(parts))
    return path


def _baseline_text(mean: float, accuracies: Sequence[float]) -> str:
    if len(accuracies) < 2:
        return f"{100 * mean:.2f}%"
    return f"{100 * mean:.2f} ± {100 * statistics.stdev(accuracies):.2f}% (n={len(accuracies)} seeds)"


def _replicates_note(means: list[dict[str, Any]]) -> list[str]:
    counts = sorted({p["n"] for p in means})
    return [f"Every figure is the **mean over {'/'.join(map(str, counts))} seeds** (each seed trains its own "
            "baseline and runs every point), with the sample standard deviation after ±; the plots draw the mean "
            "with a band of ± one standard deviation. Two means are called *within noise* when they differ by no "
            "more than two standard errors of their difference; per-seed rows are in results.csv, the summary in "
            "summary.csv.\n"]


def _sparsity_note(config: dict[str, Any]) -> str:
    output = ("the output layer is pruned too (include_output)" if config.get("include_output")
              else "the output layer is left whole, as in the reference implementations")
    return (f"Sparsity k% is measured over the **pruned layers**: k% of their weights (weight pruning) or of "
            f"their units (unit pruning) are removed; {output}. The results table also gives the zero "
            f"weights over all layers.\n")


def _fmt(value: Any, scale: float, spec: str) -> str:
    return "" if value is None else format(value * scale, spec)


def _json(data: Any) -> str:
    import json

    return json.dumps(data, indent=2)
