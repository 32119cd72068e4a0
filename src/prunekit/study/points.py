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

import copy
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import safetensors.torch

import torch
from torch import nn

from ..batches import first_batch, in_memory
from ..bench import measure_point
from ..deploy import fast_evaluate
from ..deploy.compressed import export_compressed
from ..prune import Mask, removes_units
from ..prune.layers import prunable_layers
from ..quantize import share_weights
from ..prune.report import describe_pruned
from ..structure import ModelStructure, walkable
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
    return removes_units(method) and not walkable(model)


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
            example_inputs: Any = None, structure: Optional[ModelStructure] = None) -> tuple[dict[str, Any], float]:
    """The file size and latency ratios of a pruned model (:func:`~prunekit.bench.measure_point`; compacted
    with ``structure`` if given), and the seconds measuring took (kept apart from a point's prune + evaluate time)."""
    started = time.perf_counter()
    device = next(model.parameters()).device
    measured = measure_point(model.cpu(), None, method, input_shape=input_shape, example_inputs=example_inputs,
                             structure=structure)
    model.to(device)
    return {k: measured[k] for k in MEASURED}, time.perf_counter() - started


def compress_point(model: nn.Module, bits: int, test_data: Any) -> dict[str, Any]:
    """Deep Compression of a pruned point without fine-tuning (on a copy): k-means weight sharing of every
    prunable layer's non-zero weights with ``2^bits`` centroids (fewer where a layer keeps fewer weights),
    entropy-coded; ``{compressed_bytes, compressed_ratio, compressed_test_accuracy}`` (the ratio to the fp32
    safetensors of the same state)."""
    shared_model = copy.deepcopy(model).cpu().eval()
    layers = {n: m for n, m in prunable_layers(shared_model) if int(torch.count_nonzero(m.weight)) >= 2}
    bits_of = {n: max(1, min(bits, int(torch.count_nonzero(m.weight)).bit_length() - 1)) for n, m in layers.items()}
    shared = {}
    for name, module in layers.items():
        shared.update(share_weights(shared_model, bits_of[name], layers=[name]).freeze())
    with tempfile.TemporaryDirectory() as folder:
        info = export_compressed(shared_model, shared, Path(folder) / "point.pkz")
    dense = len(safetensors.torch.save({k: v.contiguous() for k, v in shared_model.state_dict().items()}))
    accuracy = fast_evaluate(shared_model, None, *test_data) if in_memory(test_data) else evaluate(shared_model, test_data)
    return {"compressed_bytes": info.file_bytes, "compressed_ratio": dense / info.file_bytes,
            "compressed_test_accuracy": accuracy.get("accuracy")}
