"""One point of a sweep: prune a copy of the baseline, evaluate it, describe it."""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
from torch import Tensor, nn

from .prune import Mask, sparsity_report
from .fast_eval import fast_evaluate
from .train import evaluate


def time_dense_pass(model: nn.Module, x: Tensor, repeats: int = 3) -> float:
    """Median seconds of one forward pass of ``model`` over all of ``x`` (the sweep's floor)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        evaluate(model, x, torch.zeros(len(x), dtype=torch.long), batch_size=len(x))
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def describe_pruned(model: nn.Module, mask: Mask, method: str, input_shape: tuple[int, ...]) -> dict[str, Any]:
    """Counts for a pruned model: actual sparsity (weights or units, as the method prunes), non-zeros, FLOPs."""
    report = sparsity_report(model, mask, input_shape=(1, *input_shape))
    pruned = [r for r in report.rows if f"{r.name}.weight" in mask]
    if method == "unit":
        units = sum(r.units for r in pruned)
        actual = 100.0 * (units - sum(r.live_units for r in pruned)) / units
    else:
        actual = mask.sparsity()
    total = report.total
    return {
        "sparsity_actual": actual, "weight_sparsity": total.sparsity, "params_total": total.params,
        "params_nonzero": total.nonzero, "units_live": total.live_units,
        "flops_dense": total.dense_flops, "flops_effective": total.effective_flops,
    }


def evaluate_point(model: nn.Module, mask: Mask, method: str, x_test: Tensor, y_test: Tensor) -> dict[str, Any]:
    """Evaluate a pruned model on the test set and describe it: the one place a sweep
    evaluates a pruned model (so a faster evaluator can replace it here).

    Args:
        model: the pruned model (pruned entries already zero).
        mask: its mask.
        method: ``"weight"`` or ``"unit"`` (what ``sparsity_actual`` counts).
        x_test, y_test: the test set.

    Returns:
        :func:`describe_pruned`'s counts plus ``test_accuracy`` (a fraction) and ``test_loss``.
    """
    metrics = fast_evaluate(model, None, x_test, y_test)  # pruned entries are already zero
    return {
        **describe_pruned(model, mask, method, tuple(x_test.shape[1:])),
        "test_accuracy": metrics["accuracy"], "test_loss": metrics["loss"],
    }
