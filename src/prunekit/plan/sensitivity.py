"""Sensitivity analysis: prune each layer (or coupled group) alone over a grid of sparsities and record
the validation accuracy and what it removes; then allocate per-layer sparsities to a global target.

:func:`layer_sensitivity` measures the curves; :func:`allocate` turns them into a plan
``{layer: percent}`` (:mod:`.allocate`) for :func:`~prunekit.prune.prune_model` (``sparsity=plan``) or ``prunekit prune
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
    >>> from prunekit.plan import allocate
    >>> plan = allocate(curves, target=60.0)
    >>> sorted(plan), 0 <= min(plan.values()) <= max(plan.values()) <= 90
    (['0', '2'], True)
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from ..batches import in_memory
from ..bench.compact_latency import compact_latency_ratio
from ..errors import ConfigError
from ..prune import Pruner, PruneSpec, check_sparsity, select_layers
from ..prune.report import describe_pruned
from ..prune.structured import prunable_groups
from ..structure import ModelStructure
from ..training import evaluate, has_batchnorm, recalibrate_batchnorm
from .request import solver_spec, solver_structure

GRID = (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0)
"""The default sparsities each layer is pruned to."""

TARGET_KINDS = ("params", "macs", "latency")


@dataclass
class Sensitivity:
    """The curves: one row per (layer, sparsity) with the ``metric`` measured (``accuracy``, higher is better;
    or ``perplexity``, lower is better, for a language model), ``params_removed``, ``macs_removed`` and, when
    measured, ``latency_removed`` (the fraction of the dense latency the compacted model saves).
    ``dense_accuracy`` holds the dense model's value of ``metric``."""

    method: str
    dense_accuracy: float
    params_total: int
    macs_total: int
    layer_weights: dict[str, int] = field(default_factory=dict)  # weight pruning: each layer's weights
    rows: list[dict[str, Any]] = field(default_factory=list)
    bn_batches: int = 0  # batches BatchNorm statistics were re-estimated on before each evaluation (0: none)
    metric: str = "accuracy"

    def layers(self) -> list[str]:
        return list(dict.fromkeys(r["layer"] for r in self.rows))

    def curve(self, layer: str) -> list[dict[str, Any]]:
        return sorted((r for r in self.rows if r["layer"] == layer), key=lambda r: r["sparsity"])

    def loss(self, value: Optional[float]) -> float:
        """What pruning costs on this metric, additive over layers: minus the accuracy, or the log
        perplexity (the mean next-token loss); an infinite perplexity (``None``) costs 1e9."""
        if self.metric == "accuracy":
            return -float(value)
        return math.log(value) if value is not None and math.isfinite(value) else 1e9

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "metric": self.metric, f"dense_{self.metric}": self.dense_accuracy,
                "params_total": self.params_total, "macs_total": self.macs_total,
                "layer_weights": self.layer_weights, "bn_batches": self.bn_batches, "rows": self.rows}


def prunable_names(model: nn.Module, spec: PruneSpec, structure: ModelStructure) -> list[str]:
    """What a plan can name: the coupled groups of a traced model (a method that removes units, on a traced
    structure; ``spec.include_inexact`` counts), else the prunable layers (the output layer left out)."""
    if spec.removes_units and structure.traced:
        groups = prunable_groups(structure.graph, spec.layers, spec.include_inexact)
        return list(dict.fromkeys(g.name for g in groups))
    return [name for name, _ in select_layers(model, spec.method, spec.layers)]


def layer_sensitivity(model: nn.Module, spec: PruneSpec | str, validation: Any, *,
                      sparsities: Sequence[float] = GRID, example_inputs: Any = None,
                      structure: Optional[ModelStructure] = None, input_shape: Optional[Sequence[int]] = None,
                      latency_batch: Optional[int] = None, align: Optional[int] = None, bn_batches: int = 8,
                      progress: bool = True, criterion: Optional[str] = None,
                      layers: Optional[Sequence[str]] = None) -> Sensitivity:
    """Prune every layer alone to every sparsity (on a copy) and evaluate it on ``validation``.

    Args:
        model: the trained model (unchanged).
        spec: the :class:`~prunekit.prune.PruneSpec` each layer is pruned with (method, criterion, layers,
            ``include_inexact``...), or a method name (``"weight"``, ``"unit"``).
        validation: held-out data in any form :func:`~prunekit.training.evaluate` takes (use data the
            plan is not judged on: a slice of the training set, not the test set); also the calibration
            data of a criterion that needs some.
        sparsities: the grid, percentages in ``(0, 100)``.
        example_inputs: one batch; unit pruning of a non-Sequential model traces it (once) and scores groups.
        structure: instead, the model's :func:`~prunekit.structure.model_structure` (its trace is reused).
        input_shape: one sample's shape, for the MAC counts of a model taking one tensor.
        latency_batch: also measure, at this batch size on the CPU, the latency each point's compacted
            model saves (a latency table per layer width; needs ``example_inputs``).
        align: unit pruning: move each layer's grid so it keeps a multiple of ``align`` units (e.g. 8:
            CPU and GPU kernels run fastest on channel counts the vector width divides); see :func:`aligned_grid`.
        bn_batches: for a model with BatchNorm, re-estimate its statistics on this many batches (of 128) of
            ``validation`` before every evaluation, the dense one included (adaptive BN: see
            :func:`~prunekit.training.recalibrate_batchnorm`; without it a ResNet with one group half pruned
            evaluates near chance, and the curves stop telling groups apart); 0 turns it off.
        criterion, layers: with a method name, the spec's criterion and layer patterns (deprecated: put
            them in the spec).
    """
    spec = solver_spec(spec, criterion=criterion, layers=layers)
    grid = sorted({check_sparsity(k) for k in sparsities} - {0.0})
    if not grid:
        raise ConfigError("a sensitivity grid needs at least one sparsity above 0")
    if isinstance(bn_batches, bool) or not isinstance(bn_batches, int) or bn_batches < 0:
        raise ConfigError(f"bn_batches is a number of batches >= 0, got {bn_batches!r}")
    structure = solver_structure(model, example_inputs, structure)
    names = prunable_names(model, spec, structure)
    recalibrates = bn_batches > 0 and has_batchnorm(model)

    def score(pruned: nn.Module) -> float:
        if recalibrates:
            recalibrate_batchnorm(pruned, validation, batches=bn_batches)
        return evaluate(pruned, validation)["accuracy"]

    state = {k: v.clone() for k, v in model.state_dict().items()}
    work = copy.deepcopy(model)
    pruner = Pruner(work, spec, structure=structure)
    calibration = validation if spec.needs_data else None
    dense = describe_pruned(work, pruner.prune(0.0, calibration=calibration), spec.method, input_shape, example_inputs)
    modules = dict(model.named_modules())
    result = Sensitivity(spec.method, score(copy.deepcopy(model) if recalibrates else model), dense["params_nonzero"],
                         dense["flops_effective"] or 0,
                         {n: modules[n].weight.numel() for n in names} if not spec.removes_units else {},
                         bn_batches=bn_batches if recalibrates else 0)
    timing_inputs = None
    if latency_batch:
        timing_inputs = example_inputs if example_inputs is not None else _random_batch(input_shape)
    grids = {n: aligned_grid(grid, modules[n].weight.shape[0], align) if align and spec.removes_units else grid
             for n in names}
    bar = tqdm(total=sum(map(len, grids.values())), desc="sensitivity", unit="point", disable=None if progress else True)
    try:
        for name in names:
            for k in grids[name]:
                work.load_state_dict(state)
                mask = pruner.prune({_exact(name): k}, calibration=calibration)
                counts = describe_pruned(work, mask, spec.method, input_shape, example_inputs)
                row = {"layer": name, "sparsity": k, "accuracy": score(work),
                       "params_removed": result.params_total - counts["params_nonzero"],
                       "macs_removed": result.macs_total - (counts["flops_effective"] or 0)}
                if latency_batch:
                    row["latency_removed"] = 1 - compact_latency_ratio(model, mask, timing_inputs, structure=structure,
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
