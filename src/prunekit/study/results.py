"""Result files of a sweep: one JSON file per finished point, gathered into CSV and JSON tables.

Every point is written atomically the moment it is done, so an interrupted sweep keeps all
finished points, and a rerun skips them. A point's file name holds its sparsity exactly
(``50`` and ``50.0000001`` are two files) and, in a sweep with replicates, its seed.

Writers never share a file: every point has its own, written by whoever computed it (the sweep's
process or a worker), so workers on several machines merge into one store when ``OUT`` is on a
shared filesystem; the tables are rewritten from the point files by the sweep's driver.

A point's ``config_id`` fingerprints everything that determines it besides its key (baseline, recipe,
layers, ...). Before a sweep runs, :func:`keep_apart` moves the points of its series that another
configuration computed into ``OUT/other-settings/``, and brings back those of its own kept there: a
sweep never overwrites, reuses or tabulates another configuration's points.

Example:
    >>> point_key("oneshot", "weight", "layer", 92.5), point_key("oneshot", "weight", "layer", 50.0000001)
    ('oneshot-weight-layer-92.5', 'oneshot-weight-layer-50.0000001')
    >>> point_key("oneshot", "weight", "layer", 90, seed=2)
    'oneshot-weight-layer-90-seed2'
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Iterable

from ..storage import atomic_move, atomic_write_text, read_json, write_json
from .replicates import has_replicates, mean_points

COLUMNS = (
    "seed", "schedule", "method", "scope", "sparsity_target", "sparsity_actual", "weight_sparsity_pruned",
    "weight_sparsity_all", "params_total", "params_nonzero", "units_live", "flops_dense", "flops_effective",
    "test_accuracy", "test_loss", "train_epochs", "train_seconds", "seconds", "file_bytes", "latency_b1_ratio",
    "latency_b256_ratio",
)
"""Columns of ``results.csv``, in order; a point lacking a value leaves its cell empty."""

SUMMARY_COLUMNS = (
    "schedule", "method", "scope", "sparsity_target", "n", "test_accuracy", "test_accuracy_std", "test_loss",
    "test_loss_std", "sparsity_actual", "weight_sparsity_all", "params_nonzero", "flops_effective", "train_epochs",
    "seconds", "file_bytes", "latency_b1_ratio", "latency_b256_ratio",
)
"""Columns of ``summary.csv`` (sweeps with seeds): means over the seeds, standard deviations and n."""


def sparsity_text(sparsity: float) -> str:
    """The exact decimal text of a sparsity: ``50.0 -> '50'``, ``92.5 -> '92.5'``."""
    value = float(sparsity)
    return str(int(value)) if value.is_integer() else repr(value)


def point_key(schedule: str, method: str, scope: str, sparsity: float, seed: int | None = None) -> str:
    """A point's file-name-safe identity, e.g. ``oneshot-weight-layer-92.5`` (``...-seed2`` for a replicate)."""
    key = f"{schedule}-{method}-{scope}-{sparsity_text(sparsity)}"
    return key if seed is None else f"{key}-seed{int(seed)}"


class ResultStore:
    """The ``points/`` folder of a sweep, keyed by :func:`point_key` and a baseline id (and, for one
    replicate of a sweep with several seeds, the seed: its points carry ``seed``).

    Example:
        >>> import tempfile
        >>> store = ResultStore(tempfile.mkdtemp(), baseline_id="3f2a9c1e")
        >>> store.put({"schedule": "oneshot", "method": "weight", "scope": "layer", "sparsity_target": 50.0})
        >>> store.has("oneshot-weight-layer-50"), len(store.all())
        (True, 1)
    """

    def __init__(self, folder: str | Path, baseline_id: str, seed: int | None = None):
        self.folder = Path(folder)
        self.points_dir = self.folder / "points"
        self.points_dir.mkdir(parents=True, exist_ok=True)
        self.baseline_id = baseline_id
        self.seed = seed

    def _path(self, key: str) -> Path:
        return self.points_dir / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored point, or None if it is missing, unreadable, or from another baseline or replicate."""
        try:
            point = json.loads(self._path(key).read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        ours = isinstance(point, dict) and point.get("baseline_id") == self.baseline_id
        return point if ours and point.get("seed") == self.seed else None

    def has(self, key: str) -> bool:
        return self.get(key) is not None

    def put(self, point: dict[str, Any]) -> None:
        """Store a finished point atomically."""
        point = {**point, "baseline_id": self.baseline_id}
        if self.seed is not None:
            point["seed"] = self.seed
        key = point_key(point["schedule"], point["method"], point["scope"], point["sparsity_target"], self.seed)
        write_json(self._path(key), point)

    def all(self) -> list[dict[str, Any]]:
        """Every stored point of this baseline and replicate, sorted by schedule, method, scope and sparsity."""
        files = self.points_dir.glob("*.json" if self.seed is None else f"*-seed{int(self.seed)}.json")
        points = [self.get(p.stem) for p in files]
        points = [p for p in points if p is not None]
        return sorted(points, key=point_order)


OTHER_SETTINGS = "other-settings"
"""The folder of a sweep (beside ``points/``) that keeps the points of other configurations."""


def keep_apart(folder: str | Path, config_ids: dict[tuple, str]) -> int:
    """Make ``folder/points/`` hold only the points of ``config_ids`` for the series it names.

    ``config_ids``: ``(schedule, method, scope, seed) -> config_id`` of the sweep about to run. A stored point
    of one of these series with another ``config_id`` moves to ``folder/other-settings/<key>@<config_id>.json``;
    one kept there with the wanted ``config_id`` moves back. Other series are left as they are.
    Returns the number of points moved aside.
    """
    points, other = Path(folder) / "points", Path(folder) / OTHER_SETTINGS
    moved = 0
    for path, point in _point_files(points):
        series = _series(point)
        if series in config_ids and point.get("config_id") != config_ids[series]:
            other.mkdir(exist_ok=True)
            atomic_move(path, other / f"{path.stem}@{point.get('config_id')}.json")
            moved += 1
    for path, point in _point_files(other):
        series = _series(point)
        if series in config_ids and point.get("config_id") == config_ids[series]:
            home = points / f"{point_key(*series[:3], point['sparsity_target'], series[3])}.json"
            if not home.exists():
                atomic_move(path, home)
    return moved


def _point_files(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    """``(path, point)`` of the readable point files in ``folder`` (not writers' ``.*`` temporaries)."""
    found = []
    for path in sorted(folder.glob("[!.]*.json")) if folder.is_dir() else []:
        try:
            point = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(point, dict) and {"schedule", "method", "scope", "sparsity_target"} <= point.keys():
            found.append((path, point))
    return found


def _series(point: dict[str, Any]) -> tuple:
    """The series a point belongs to: ``(schedule, method, scope, seed)``."""
    return point["schedule"], point["method"], point["scope"], point.get("seed")


def point_order(point: dict[str, Any]) -> tuple:
    """Sort key of points: schedule, method, scope, sparsity, then seed."""
    return point["schedule"], point["method"], point["scope"], point["sparsity_target"], point.get("seed", -1)


def write_tables(points: Iterable[dict[str, Any]], folder: str | Path) -> None:
    """Write ``results.csv`` and ``results.json`` (atomically) from the points; for points of several seeds,
    also ``summary.csv`` and ``summary.json`` (see :func:`~.replicates.mean_points`)."""
    points = list(points)
    folder = Path(folder)
    atomic_write_text(folder / "results.csv", _csv(points, COLUMNS))
    write_json(folder / "results.json", points)
    if has_replicates(points):
        means = mean_points(points)
        atomic_write_text(folder / "summary.csv", _csv(means, SUMMARY_COLUMNS))
        write_json(folder / "summary.json", means)


def _csv(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def read_results(folder: str | Path) -> list[dict[str, Any]]:
    """The points in ``folder/results.json``."""
    points = read_json(Path(folder) / "results.json")
    return points if isinstance(points, list) else []
