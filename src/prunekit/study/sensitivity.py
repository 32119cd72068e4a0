"""Sensitivity analysis: prune each layer (or coupled group) alone over a grid of sparsities and record
the validation accuracy and what it removes; then allocate per-layer sparsities to a global target.

:func:`layer_sensitivity` measures the curves; :func:`allocate` turns them into a plan
``{layer: percent}`` for :func:`~prunekit.prune.prune_model` (``sparsity=plan``) or ``prunekit prune
--ratios``: greedily, it takes the next grid step of whichever layer loses the least predicted accuracy
per weight (or MAC) removed, until the target is reached. The prediction adds the layers' drops
(measured one layer at a time), which is what makes it cheap and what makes it approximate.

Example:
    >>> import torch
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))
    >>> x = torch.randn(64, 8); y = torch.randint(0, 3, (64,))
    >>> curves = layer_sensitivity(model, "weight", (x, y), sparsities=(50, 90), progress=False)
    >>> sorted({row["layer"] for row in curves.rows})
    ['0', '2']
    >>> plan = allocate(curves, target=60.0)
    >>> sorted(plan), 0 <= min(plan.values()) <= max(plan.values()) <= 90
    (['0', '2'], True)
"""

from __future__ import annotations

import copy
import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from ..bench.compact_latency import compact_latency_ratio
from ..errors import ConfigError
from ..prune import check_sparsity, prune_model, removes_units, select_layers
from ..storage import atomic_write_text
from ..training import evaluate, has_batchnorm, recalibrate_batchnorm
from .plot import plot_accuracy
from .points import describe_pruned, in_memory, traces

GRID = (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0)
"""The default sparsities each layer is pruned to."""

TARGET_KINDS = ("params", "macs", "latency")


@dataclass
class Sensitivity:
    """The curves: one row per (layer, sparsity) with ``accuracy``, ``params_removed``, ``macs_removed``
    and, when measured, ``latency_removed`` (the fraction of the dense latency the compacted model saves)."""

    method: str
    dense_accuracy: float
    params_total: int
    macs_total: int
    layer_weights: dict[str, int] = field(default_factory=dict)  # weight pruning: each layer's weights
    rows: list[dict[str, Any]] = field(default_factory=list)
    bn_batches: int = 0  # batches BatchNorm statistics were re-estimated on before each evaluation (0: none)

    def layers(self) -> list[str]:
        return list(dict.fromkeys(r["layer"] for r in self.rows))

    def curve(self, layer: str) -> list[dict[str, Any]]:
        return sorted((r for r in self.rows if r["layer"] == layer), key=lambda r: r["sparsity"])

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "dense_accuracy": self.dense_accuracy, "params_total": self.params_total,
                "macs_total": self.macs_total, "layer_weights": self.layer_weights, "bn_batches": self.bn_batches,
                "rows": self.rows}


def prunable_names(model: nn.Module, method: str, example_inputs: Any = None,
                   layers: Optional[Sequence[str]] = None) -> list[str]:
    """What a plan can name: the coupled groups of a traced model (unit pruning with example inputs),
    else the prunable layers (the output layer left out)."""
    if example_inputs is not None and traces(model, method):
        from ..prune.structured import prunable_groups
        from ..structure import trace

        return list(dict.fromkeys(g.name for g in prunable_groups(trace(model, example_inputs), layers)))
    return [name for name, _ in select_layers(model, method, layers)]


def layer_sensitivity(model: nn.Module, method: str, validation: Any, *, sparsities: Sequence[float] = GRID,
                      criterion: Optional[str] = None, example_inputs: Any = None,
                      input_shape: Optional[Sequence[int]] = None, layers: Optional[Sequence[str]] = None,
                      latency_batch: Optional[int] = None, align: Optional[int] = None,
                      bn_batches: int = 8, progress: bool = True) -> Sensitivity:
    """Prune every layer alone to every sparsity (on a copy) and evaluate it on ``validation``.

    Args:
        model: the trained model (unchanged).
        method: ``"weight"`` or ``"unit"``.
        validation: held-out data in any form :func:`~prunekit.training.evaluate` takes (use data the
            plan is not judged on: a slice of the training set, not the test set).
        sparsities: the grid, percentages in ``(0, 100)``.
        criterion: what ranks weights or units (default: the method's).
        example_inputs: one batch; unit pruning of a non-Sequential model traces it and scores groups.
        input_shape: one sample's shape, for the MAC counts of a model taking one tensor.
        layers: fnmatch patterns restricting the layers analysed.
        latency_batch: also measure, at this batch size on the CPU, the latency each point's compacted
            model saves (a latency table per layer width; needs ``example_inputs``).
        align: unit pruning: move each layer's grid so it keeps a multiple of ``align`` units (e.g. 8:
            CPU and GPU kernels run fastest on channel counts the vector width divides); see :func:`aligned_grid`.
        bn_batches: for a model with BatchNorm, re-estimate its statistics on this many batches (of 128) of
            ``validation`` before every evaluation, the dense one included (adaptive BN: see
            :func:`~prunekit.training.recalibrate_batchnorm`; without it a ResNet with one group half pruned
            evaluates near chance, and the curves stop telling groups apart); 0 turns it off.
    """
    grid = sorted({check_sparsity(k) for k in sparsities} - {0.0})
    if not grid:
        raise ConfigError("a sensitivity grid needs at least one sparsity above 0")
    traced = example_inputs if traces(model, method) else None
    names = prunable_names(model, method, traced, layers)
    if isinstance(bn_batches, bool) or not isinstance(bn_batches, int) or bn_batches < 0:
        raise ConfigError(f"bn_batches is a number of batches >= 0, got {bn_batches!r}")
    recalibrates = bn_batches > 0 and has_batchnorm(model)

    def score(pruned: nn.Module) -> float:
        if recalibrates:
            recalibrate_batchnorm(pruned, validation, batches=bn_batches)
        return evaluate(pruned, validation)["accuracy"]

    dense = describe_pruned(model, prune_model(copy.deepcopy(model), method, 0.0, example_inputs=traced), method,
                            input_shape, example_inputs)
    modules = dict(model.named_modules())
    result = Sensitivity(method, score(copy.deepcopy(model) if recalibrates else model), dense["params_nonzero"],
                         dense["flops_effective"] or 0,
                         {n: modules[n].weight.numel() for n in names} if not removes_units(method) else {},
                         bn_batches=bn_batches if recalibrates else 0)
    timing_inputs = None
    if latency_batch:
        timing_inputs = example_inputs if example_inputs is not None else _random_batch(input_shape)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    work = copy.deepcopy(model)
    grids = {n: aligned_grid(grid, modules[n].weight.shape[0], align) if align and removes_units(method) else grid
             for n in names}
    bar = tqdm(total=sum(map(len, grids.values())), desc="sensitivity", unit="point", disable=None if progress else True)
    try:
        for name in names:
            for k in grids[name]:
                work.load_state_dict(state)
                mask = prune_model(work, method, {_exact(name): k}, criterion=criterion, example_inputs=traced)
                counts = describe_pruned(work, mask, method, input_shape, example_inputs)
                row = {"layer": name, "sparsity": k, "accuracy": score(work),
                       "params_removed": result.params_total - counts["params_nonzero"],
                       "macs_removed": result.macs_total - (counts["flops_effective"] or 0)}
                if latency_batch:
                    row["latency_removed"] = 1 - compact_latency_ratio(model, mask, timing_inputs,
                                                                       batch_size=latency_batch)
                result.rows.append(row)
                bar.update(1)
    finally:
        bar.close()
    return result


def aligned_grid(grid: Sequence[float], units: int, align: int) -> list[float]:
    """The sparsities of ``grid`` moved so that each keeps a multiple of ``align`` of ``units`` (at least
    ``align``); a layer of at most ``align`` units keeps its grid.

    Example:
        >>> aligned_grid([10, 25, 50, 90], 16, 8), aligned_grid([30, 60], 64, 8)
        ([50.0], [25.0, 62.5])
    """
    if units <= align:
        return list(grid)
    found = set()
    for k in grid:
        kept = max(align, align * round((units - round(k / 100 * units)) / align))
        if kept < units:
            found.add(100 * (units - kept) / units)
    return sorted(found)


def training_tail(data: Any, samples: int) -> tuple:
    """The last ``samples`` in-memory training samples of a dataset, as a validation slice.

    Raises:
        ConfigError: for a non-positive count, or a dataset that streams (use the API with your own data).
    """
    if not (isinstance(samples, int) and samples > 0):
        raise ConfigError(f"the validation slice needs a positive number of samples, got {samples!r}")
    train = data.split("train")
    if not in_memory(train):
        raise ConfigError("the validation slice is taken from in-memory training tensors; this dataset streams "
                          "(use the Python API: layer_sensitivity / plan_for_latency take any validation data)")
    return train[0][-samples:], train[1][-samples:]


def _random_batch(input_shape: Optional[Sequence[int]]):
    if input_shape is None:
        raise ConfigError("measuring latency needs example inputs or the data's input shape")
    return torch.randn(2, *input_shape)


def _exact(name: str) -> str:
    """An fnmatch pattern matching exactly ``name`` (brackets escaped)."""
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name)


def allocate(curves: Sensitivity, target: float, kind: str = "params") -> dict[str, float]:
    """Per-layer sparsities that remove ``target`` percent of the parameters (``params``: of the analysed
    layers' weights for weight pruning, of the model's for unit pruning) or of the model's MACs
    (``macs``) with the least predicted accuracy loss (greedy on the curves).

    Raises:
        ConfigError: for an unknown kind, or a target the grid cannot reach (naming the most it can).
    """
    if kind not in TARGET_KINDS:
        raise ConfigError(f"unknown budget kind {kind!r}; choose from {', '.join(TARGET_KINDS)}")
    check_sparsity(target)
    key = f"{kind}_removed"
    if kind == "latency":
        if any(key not in r for r in curves.rows):
            raise ConfigError("a latency budget needs curves measured with latency_batch (a latency table)")
        total = 1.0
    elif kind == "macs":
        total = curves.macs_total
    elif curves.layer_weights:  # weight pruning: k% of the analysed layers' weights, as sweeps count it
        total = sum(curves.layer_weights.values())
    else:
        total = curves.params_total
    goal = target / 100 * total
    steps = {n: [{"sparsity": 0.0, "accuracy": curves.dense_accuracy, key: 0}] + curves.curve(n)
             for n in curves.layers()}
    at = {n: 0 for n in steps}
    removed = 0.0
    reachable = sum(max(r[key] for r in s) for s in steps.values())
    if reachable < goal:
        raise ConfigError(f"a {target:g}% {kind} target is out of reach of the sensitivity grid: pruning every "
                          f"layer to its largest grid sparsity removes {100 * reachable / max(total, 1):.1f}%")
    while removed < goal:
        best, best_cost = None, None
        for n, s in steps.items():  # the cheapest next move: any further step (a noisy step may save nothing)
            here = s[at[n]]
            for j in range(at[n] + 1, len(s)):
                gain = s[j][key] - here[key]
                if gain <= 0:
                    continue
                cost = (max(0.0, here["accuracy"] - s[j]["accuracy"]) + 1e-9) / gain
                if best_cost is None or cost < best_cost:
                    best, best_cost = (n, j), cost
        if best is None:
            break
        n, j = best
        removed += steps[n][j][key] - steps[n][at[n]][key]
        at[n] = j
    return {n: steps[n][at[n]]["sparsity"] for n in steps}


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
