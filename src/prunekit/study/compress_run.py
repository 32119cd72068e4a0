"""Deep Compression of a checkpoint (Han et al. 2016): quantize the weights that pruning left -- shared
weights (k-means) whose centroids are then fine-tuned, or uniform int8/int4 that keeps zeros -- and
entropy-code the result into one file; every stage's size and test accuracy recorded.

The pruning stage is any ``prunekit prune`` run (any schedule) before this one: give its checkpoint;
``prunekit compress --sparsity ...`` runs both.

Example:
    >>> import tempfile
    >>> from prunekit.checkpoint import save_checkpoint
    >>> from prunekit.models import get_model
    >>> folder = tempfile.mkdtemp()
    >>> _ = save_checkpoint(folder + "/dense", get_model("lenet300", seed=0), model_name="lenet300",
    ...                     dataset="mnist")
    >>> result = compress_checkpoint(folder + "/dense", out=folder + "/z", bits=2,
    ...                              centroids=TrainConfig(epochs=0.02), progress=False)
    >>> [s["stage"] for s in result.stages]
    ['input', 'quantized', 'centroids trained', 'coded']
    >>> result.stages[-1]["bytes"] == result.file.stat().st_size
    True
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from ..checkpoint import WEIGHTS_FILE, checkpoint_dataset_name, load_checkpoint
from ..data import load_dataset
from ..deploy import export_sparse
from ..deploy.compressed import CompressedExport
from ..deploy.compressed_checkpoint import export_checkpoint_compressed, load_compressed_checkpoint
from ..errors import ConfigError
from ..prune.layers import prunable_layers
from ..quantize import Bits, check_bits, gptq_model, round_layers, share_weights
from ..quantize.share import check_bit_patterns, layer_bits
from ..storage import atomic_write_text, check_output, claim_output, mark_output
from ..training import TrainConfig, evaluate, train

QUANTIZATIONS = ("shared", "uniform", "gptq")
"""``shared``: k-means weight sharing, centroids fine-tuned; ``uniform``: per-channel symmetric integers,
rounded to nearest; ``gptq``: the same integers, each column's rounding error compensated from calibration
batches of the training set (GPTQ, the mask held)."""
GPTQ_BATCHES = 32
"""Calibration batches (of 128 training samples) for ``gptq``."""
DEFAULT_BITS = {"linear": 5, "conv": 8}
"""Han et al. 2016's widths on AlexNet: 5 bits for fully connected layers, 8 for convolutions."""
COMPRESSED_FILE = "model.pkz"
SPARSE_FILE = "sparse.safetensors"
"""The input's sparse export (:func:`~prunekit.deploy.export_sparse`): the size before quantization."""
REPORT_FILE = "compress.json"
OUTPUTS = (COMPRESSED_FILE, SPARSE_FILE, REPORT_FILE)
"""What :func:`compress_checkpoint` writes at the top of its folder."""
CENTROID_RECIPE = TrainConfig(epochs=1.0, lr=0.01, lr_schedule="cosine", warmup_fraction=0.0, weight_decay=0.0)
"""Fine-tuning of the centroids: one epoch of SGD at 0.01 (the weights are already trained; only the
codebook moves), cosine decay, no weight decay (it would pull the centroids towards zero)."""


@dataclass
class CompressResult:
    """The compressed file, the model it decodes to, each stage's ``{stage, bytes, ratio, test_accuracy}``
    and the export's per-tensor sizes."""

    file: Path
    model: torch.nn.Module
    stages: list[dict[str, Any]]
    export: CompressedExport
    report: Path
    metrics: dict[str, Any] = field(default_factory=dict)


def compress_checkpoint(checkpoint: str | Path, *, out: str | Path, quantization: str = "shared",
                        bits: Bits = DEFAULT_BITS, centroids: Optional[TrainConfig] = CENTROID_RECIPE,
                        data_dir: Optional[str] = None, dataset: Optional[str] = None,
                        model_source: Optional[str] = None, progress: bool = True) -> CompressResult:
    """Quantize, fine-tune the centroids of, and entropy-code a (pruned) checkpoint into ``out``.

    Writes ``out/model.pkz`` (:mod:`prunekit.deploy.compressed`) and ``out/compress.json`` (the stages).
    The stages, each with ``bytes`` and ``ratio`` to the checkpoint's fp32 weights file: ``input`` (its sparse
    export, ``out/sparse.safetensors``), ``quantized`` and ``centroids trained`` (shared weights with
    ``centroids`` given; the size with fixed-width codes, before entropy coding) and ``coded`` (the file on
    disk, decoded again and evaluated).

    Raises:
        ConfigError: an unknown quantization, bits outside 1-8 (2-8 for uniform and gptq), a layer with fewer non-zero
            weights than centroids, or an output folder that is the input.
    """
    if quantization not in QUANTIZATIONS:
        raise ConfigError(f"unknown quantization {quantization!r}; expected one of {QUANTIZATIONS}")
    for b in (bits.values() if isinstance(bits, dict) else [bits]):
        check_bits(b, low=1 if quantization == "shared" else 2)
    out = compress_output(out, checkpoint)
    ckpt = load_checkpoint(checkpoint, model_source=model_source)
    data = load_dataset(checkpoint_dataset_name(ckpt.config, dataset, checkpoint), data_dir, progress=progress)
    test = data.split("test")
    model = ckpt.model
    dense_bytes = (ckpt.path / WEIGHTS_FILE).stat().st_size
    mark_output(out, "compress")
    sparse = export_sparse(model, out / SPARSE_FILE)
    stages = [_stage("input", sparse.file_bytes, model, test)]
    started = time.perf_counter()
    check_bit_patterns(bits, list(dict(prunable_layers(model))))
    if quantization == "shared":
        shared = share_weights(model, bits)
        stages.append(_stage("quantized", None, model, test))
        if centroids is not None:
            train(model, data.split("train"), centroids, progress=progress, desc="centroids")
            stages.append(_stage("centroids trained", None, model, test))
        quantized = shared.freeze()
    elif quantization == "gptq":
        layers = dict(prunable_layers(model))
        quantized = gptq_model(model, layers, data.split("train"), lambda name, module: layer_bits(bits, module, name),
                               batches=GPTQ_BATCHES, progress=progress)
        stages.append(_stage("quantized", None, model, test))
    else:
        quantized = round_layers(dict(prunable_layers(model)), lambda name, module: layer_bits(bits, module, name))
        stages.append(_stage("quantized", None, model, test))
    metadata = {"source": str(checkpoint), "quantization": quantization, "bits": bits}
    recorded = {**ckpt.metrics, "test_accuracy": stages[-1]["test_accuracy"],
                "uncompressed_test_accuracy": ckpt.metrics.get("test_accuracy")}
    export = export_checkpoint_compressed(ckpt, out / COMPRESSED_FILE, quantized=quantized, metadata=metadata,
                                          metrics=recorded)
    decoded = load_compressed_checkpoint(export.path, model_source=model_source).model
    stages.append(_stage("coded", export.file_bytes, decoded, test))
    for stage in stages[1:-1]:
        stage["bytes"] = export.fixed_width_bytes()
    for stage in stages:
        stage["ratio"] = dense_bytes / stage["bytes"] if stage["bytes"] else None
    metrics = {"seconds": time.perf_counter() - started, "dense_bytes": dense_bytes, "dense_test_accuracy": ckpt.metrics.get("dense_test_accuracy")
               or ckpt.metrics.get("test_accuracy"), "tensors": [vars(t) | {"nbytes": t.nbytes} for t in export.tensors],
               "raw_bytes": export.raw_bytes, "header_bytes": export.header_bytes}
    report = out / REPORT_FILE
    atomic_write_text(report, json.dumps({"stages": stages, "metadata": metadata, **metrics}, indent=2, default=list))
    return CompressResult(export.path, decoded, stages, export, report, metrics)


def compress_output(out: str | Path, checkpoint: str | Path) -> Path:
    """``out`` checked for :func:`compress_checkpoint` before any work: a folder of its results that is not the
    checkpoint nor inside it (the checkpoint may lie inside it: ``prunekit compress --sparsity`` prunes into
    ``out/pruned``), holding nothing of someone else's under the names it writes."""
    out, source = Path(out).resolve(), Path(checkpoint).resolve()
    if out == source or source in out.parents:
        raise ConfigError(f"the output folder {out} is the checkpoint {checkpoint} or lies inside it; give another")
    out = check_output(out, allow_other_files=True)
    claim_output(out, "compress", OUTPUTS, earlier=REPORT_FILE)
    return out


def _stage(name: str, nbytes: Optional[int], model: torch.nn.Module, test) -> dict[str, Any]:
    return {"stage": name, "bytes": nbytes, "test_accuracy": evaluate(model, test).get("accuracy")}
