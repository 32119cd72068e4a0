"""What one pruned model buys, quickly: file size and latency ratios for a sweep point.

Example:
    >>> from prunekit.models import get_model
    >>> from prunekit.prune import prune_model
    >>> model = get_model("lenet300", seed=0)
    >>> point = measure_point(model, prune_model(model, "unit", 75.0), input_shape=(1, 28, 28), repeats=(3, 2))
    >>> point["file_ratio"] > 3
    True
"""

from __future__ import annotations

import copy
from typing import Any, Mapping, Optional, Sequence

import safetensors.torch
import torch
from torch import Tensor, nn

from ..batches import make_inputs
from ..compact import compact
from ..deploy.sparse_file import sparse_file_bytes
from ..deploy.sparsify import DEFAULT_KERNELS, sparsify
from ..prune.mask import as_mask
from ..structure import ModelStructure, model_structure
from ..timing import measure


@torch.inference_mode()
def measure_point(
    model: nn.Module,
    mask: Optional[Mapping[str, Tensor]] = None,
    method: Optional[str] = None,
    *,
    input_shape: Optional[Sequence[int]] = None,
    example_inputs: Any = None,
    structure: Optional[ModelStructure] = None,
    repeats: tuple[int, int] = (40, 8),
) -> dict:
    """What a pruned model buys, quickly (well under a second for the reference MLP): for a sweep point.

    The deployable artifact is the compact model (an ``nn.Sequential``, or any model given
    ``example_inputs``) with sparse kernels where measured faster, and its file is the compact
    model's :func:`~prunekit.deploy.export_sparse` encoding: the best choice for weight and unit
    pruning alike (``method`` is only recorded).

    Args:
        model: the pruned model (not modified).
        mask: its mask (``None`` if already applied to the weights).
        method: the pruning method, copied into the result.
        input_shape: one sample's shape (random inputs), or:
        example_inputs: one batch of any form (resized to batch 1 and 256).
        structure: the model's :func:`~prunekit.structure.model_structure` to compact with (its trace reused;
            default: traced on ``example_inputs`` if given, else an ``nn.Sequential`` walked).
        repeats: timed calls at batch 1 and at batch 256 (medians, dense and pruned interleaved).

    Returns:
        ``{"file_bytes", "dense_file_bytes", "file_ratio", "latency_b1_ratio", "latency_b256_ratio",
        "method"}``; latency ratios are pruned / dense time measured in this call (< 1 is faster).

    """
    dense = copy.deepcopy(model).eval()
    if mask is not None:
        as_mask(mask).apply_(dense)
    structure = structure if structure is not None else model_structure(dense, example_inputs)
    small = compact(dense, structure=structure).model if structure.removes_units else dense
    fast = sparsify(small, batch_sizes=(1, 256), input_shape=input_shape, example_inputs=example_inputs, repeats=5,
                    kernels=DEFAULT_KERNELS)
    inputs = make_inputs(input_shape, example_inputs)
    size = sparse_file_bytes(small)
    dense_bytes = len(safetensors.torch.save({k: v.contiguous() for k, v in dense.state_dict().items()}))
    out = {"file_bytes": size.file_bytes, "dense_file_bytes": dense_bytes,
           "file_ratio": dense_bytes / size.file_bytes, "method": method}
    for batch, n in zip((1, 256), repeats):
        args, kwargs = inputs(batch)
        times = measure({"dense": lambda: dense(*args, **kwargs), "pruned": lambda: fast(*args, **kwargs)},
                        repeats=n, warmup=2)
        out[f"latency_b{batch}_ratio"] = times["pruned"] / times["dense"]
    return out
