"""One point of a sweep, top to bottom: the pruned model (from a schedule) is evaluated and described
(:mod:`prunekit.deploy` for fast evaluation), measured (:mod:`prunekit.bench`), and returned as a
flat dict that :mod:`.results` stores.

Sparsities of a point, and over what:

* ``sparsity_actual``: of what the method prunes, over the **pruned layers** (weights for weight
  pruning, units for unit pruning);
* ``weight_sparsity_pruned``: zero weights over the pruned layers' weights;
* ``weight_sparsity_all``: zero weights over **all** layers' weights (the output layer included).

Example:
    >>> import torch
    >>> from prunekit.models import get_model
    >>> from prunekit.prune import prune_model
    >>> model = get_model("lenet300", seed=0)
    >>> mask = prune_model(model, "weight", 90.0)
    >>> x, y = torch.randn(50, 1, 28, 28), torch.randint(0, 10, (50,))
    >>> point = evaluate_point(model, mask, "weight", (x, y), input_shape=(1, 28, 28))
    >>> round(point["sparsity_actual"], 1), round(point["weight_sparsity_all"], 2)
    (90.0, 89.66)
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Optional, Sequence

import torch
from torch import Tensor, nn

from ..batches import first_batch, resize_batch
from ..bench import measure_point
from ..deploy import fast_evaluate
from ..prune import Mask, classifier_name, removes_units, sparsity_report
from ..training import evaluate

MEASURED = ("file_bytes", "latency_b1_ratio", "latency_b256_ratio")
"""What :func:`measure` adds to a point."""


def time_dense_pass(model: nn.Module, test_data: Any, repeats: int = 3) -> float:
    """Median seconds of one evaluation pass of ``model`` over the test data (the sweep's floor)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        if in_memory(test_data):
            x = test_data[0]
            with torch.inference_mode():
                model.eval()(x)
        else:
            evaluate(model, test_data)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def example_batch(data: Any) -> Any:
    """One test batch of ``data`` as model inputs (a tensor, tuple or dict), or ``None`` when the data is
    in-memory tensors whose ``input_shape`` is enough."""
    test = data.split("test")
    if in_memory(test) and getattr(data, "input_shape", None):
        return None
    batch = first_batch(test)
    return batch.kwargs if batch.kwargs else (batch.args[0] if len(batch.args) == 1 else batch.args)


def traces(model: nn.Module, method: str) -> bool:
    """Whether unit pruning of ``model`` traces it (any model but an ``nn.Sequential``, see :func:`tracing_batch`)."""
    return removes_units(method) and not isinstance(model, nn.Sequential)


def tracing_batch(model: nn.Module, method: str, data: Any) -> Any:
    """The batch unit pruning traces ``model`` on, or ``None`` where tracing is not needed.

    An ``nn.Sequential`` is pruned layer by layer in order; any other model is traced so its coupled
    channels (residual additions, concatenations, attention heads) are pruned together, as whole units
    that compaction can remove.
    """
    if not traces(model, method):
        return None
    batch = example_batch(data)
    return data.split("test")[0][:2] if batch is None else batch


def in_memory(data: Any) -> bool:
    """Whether ``data`` is ``(x, y)`` tensors (the fast path)."""
    return isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, Tensor) for t in data)


def describe_pruned(model: nn.Module, mask: Mask, method: str, input_shape: Optional[Sequence[int]] = None,
                    example_inputs: Any = None) -> dict[str, Any]:
    """Counts for a pruned model: actual sparsities (see the module docstring), non-zeros, FLOPs."""
    if example_inputs is not None:
        report = sparsity_report(model, mask, example_inputs=resize_batch(example_inputs, 1))
    else:
        report = sparsity_report(model, mask, input_shape=(1, *input_shape) if input_shape else None)
    pruned = [r for r in report.rows if r.masked]
    if removes_units(method):  # the output layer's units are the model's outputs: never pruned, never counted
        pruned = [r for r in pruned if r.name != classifier_name(model)]
        units = sum(r.units for r in pruned)
        actual = 100.0 * (units - sum(r.live_units for r in pruned)) / max(units, 1)
    else:
        actual = report.pruned.sparsity
    total = report.total
    per_layer = {r.name: round(100.0 * (r.units - r.live_units) / r.units if removes_units(method) else r.sparsity, 2)
                 for r in pruned if r.units}
    return {
        "sparsity_actual": actual, "weight_sparsity_pruned": report.pruned.sparsity,
        "weight_sparsity_all": total.sparsity, "params_total": total.params, "params_nonzero": total.nonzero,
        "units_live": total.live_units, "flops_dense": total.dense_flops, "flops_effective": total.effective_flops,
        "layer_sparsity": per_layer,
    }


def evaluate_point(model: nn.Module, mask: Mask, method: str, test_data: Any, *,
                   input_shape: Optional[Sequence[int]] = None, example_inputs: Any = None) -> dict[str, Any]:
    """Evaluate a pruned model (pruned entries already zero) on the test set and describe it.

    In-memory test tensors are evaluated with sparse kernels and compaction
    (:func:`~prunekit.deploy.fast_evaluate`); other data with :func:`~prunekit.training.evaluate`.

    Returns:
        :func:`describe_pruned`'s counts plus ``test_accuracy`` (a fraction; ``None`` when the model is
        not a classifier) and ``test_loss``.
    """
    on_cpu = next(model.parameters()).device.type == "cpu"
    metrics = fast_evaluate(model, None, *test_data) if in_memory(test_data) and on_cpu else evaluate(model, test_data)
    return {**describe_pruned(model, mask, method, input_shape, example_inputs),
            "test_accuracy": metrics.get("accuracy"), "test_loss": metrics["loss"]}


def measure(model: nn.Module, method: str, input_shape: Optional[Sequence[int]] = None,
            example_inputs: Any = None) -> tuple[dict[str, Any], float]:
    """The file size and latency ratios of a pruned model (:func:`~prunekit.bench.measure_point`),
    and the seconds measuring took (kept apart from a point's prune + evaluate time)."""
    started = time.perf_counter()
    device = next(model.parameters()).device
    measured = measure_point(model.cpu(), None, method, input_shape=input_shape, example_inputs=example_inputs)
    model.to(device)
    return {k: measured[k] for k in MEASURED}, time.perf_counter() - started
