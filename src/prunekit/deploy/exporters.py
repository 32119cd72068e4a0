"""Export formats of ``prunekit export``: a registry of exporters from a pruned model to a file or folder.

* ``sparse``: one safetensors file, each tensor in its smallest encoding (:mod:`.sparse_file`);
* ``compact``: a compact checkpoint folder (dead units removed): an ``nn.Sequential`` as a JSON
  architecture of standard layers, any other (traced) model as its source (registry name or user
  code, which loading needs named again) plus the compaction plans replayed on it;
* ``onnx``: the compact model as ONNX, checked against onnxruntime (:mod:`.onnx`);
* ``compressed``: Deep Compression's file: shared weights as entropy-coded codes and gap-coded positions,
  the rest as it is, decoding to the same model bit for bit (:mod:`.compressed_checkpoint`);
* ``hf`` (registered by :mod:`prunekit.hf`): a Hugging Face folder stock transformers loads.

Example:
    >>> EXPORTERS.names()[:4]  # prunekit.hf adds "hf"
    ['sparse', 'compact', 'onnx', 'compressed']
    >>> EXPORTERS.get("onnx").output
    'file'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..batches import as_args, make_inputs, resize_batch
from ..checkpoint import WEIGHTS_FILE, save_checkpoint
from ..compact import compact
from ..errors import ConfigError
from ..prune.layers import prunable_layers
from ..registry import Registry
from ..structure import model_structure
from .compressed_checkpoint import export_checkpoint_compressed, load_compressed_checkpoint
from .onnx import export_onnx
from .sparse_file import export_sparse, load_sparse


@dataclass(frozen=True)
class ExportOptions:
    """What an exporter may use besides the model: the input shape, flags and the source's record."""

    input_shape: tuple[int, ...] | None
    fp16: bool = False
    compact: bool = False
    metrics: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    example_inputs: Any = None
    mask: Any = None
    pruning: dict[str, Any] | None = None
    checkpoint: Any = None

    def batch(self, size: int = 2) -> Any:
        """Example inputs of ``size`` samples (the given ones, resized, or random ones of ``input_shape``)."""
        if self.example_inputs is not None:
            return resize_batch(self.example_inputs, size)
        return make_inputs(self.input_shape)(size)[0][0]


@dataclass(frozen=True)
class Exporter:
    """An export format: ``run(model, out, options) -> lines to print``; ``output`` is ``file`` or ``folder``;
    ``language_models``: whether it writes Hugging Face language models (``hf:DIR``) too."""

    name: str
    output: str
    run: Callable[[nn.Module, Path, ExportOptions], list[str]]
    language_models: bool = False


EXPORTERS: Registry[Exporter] = Registry("export format")


def max_output_diff(a: nn.Module, b: nn.Module, options: "ExportOptions", batch: int = 64) -> float:
    """Largest absolute output difference of two models on one batch (eval mode)."""
    args, kwargs = as_args(options.batch(batch))
    with torch.inference_mode():
        try:
            want, got = _first(a.eval()(*args, **kwargs)), _first(b.eval()(*args, **kwargs))
        except RuntimeError as exc:
            shape = list(options.input_shape or ())
            raise ConfigError(f"the model does not run on inputs of shape {shape} per sample ({exc}); "
                              f"give the input shape it expects, or --example-inputs") from None
    return (want - got).abs().max().item()


def _first(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    values = out.to_tuple() if hasattr(out, "to_tuple") else (out.values() if isinstance(out, dict) else out)
    return next(v for v in values if isinstance(v, torch.Tensor))


def compacted(model: nn.Module, options: ExportOptions):
    """The compaction of ``model`` (its mask already applied) and its output difference to ``model``:
    layer by layer for an ``nn.Sequential``, traced on example inputs otherwise."""
    structure = model_structure(model, options.example_inputs)
    if structure.traced or not structure.removes_units:  # traced on a batch of 2 of the recorded inputs
        structure = model_structure(model, options.batch(2))
    result = compact(model, structure=structure)
    return result, max_output_diff(result.model, model, options)


def _sparse(model: nn.Module, out: Path, options: ExportOptions) -> list[str]:
    if options.compact:
        model = compacted(model, options)[0].model
    info = export_sparse(model, out, fp16=options.fp16)
    lines = [f"{t.name:24s} {'x'.join(map(str, t.shape)):>14s} {t.encoding:8s} {t.stored_dtype:8s} "
             f"{t.nbytes:>11,} B  ({t.dense_nbytes / max(t.nbytes, 1):6.1f}x)" for t in info.tensors]
    reloaded = _reloaded(model, load_sparse(out))
    lines.append(f"\nsparse file {info.file_bytes:,} bytes{' (fp16 values)' if options.fp16 else ''}; round trip: "
                 f"max output difference on a random batch {max_output_diff(reloaded, model, options):.2e}")
    return lines


def _reloaded(model: nn.Module, state: dict) -> nn.Module:
    import copy

    copied = copy.deepcopy(model)
    copied.load_state_dict(state)
    return copied


def _compact(model: nn.Module, out: Path, options: ExportOptions) -> list[str]:
    result, diff = compacted(model, options)
    meta = dict(metrics=options.metrics, compacted_from=options.source, compaction=result.report.to_dict(),
                input_shape=list(options.input_shape) if options.input_shape else None)
    source = options.source
    if result.plan is not None:  # a traced model: rebuilt as the source builds it, then the plans replayed
        if source.get("architecture") or not (source.get("name") or source.get("source")):
            raise ConfigError("this model was compacted with a plan, which is replayed on the model its checkpoint "
                              "rebuilds, but the checkpoint names no model to rebuild; save it in Python with "
                              "result.save(folder) and load it with prunekit.load_compacted(fresh_model, folder)")
        save_checkpoint(out, result.model, model_name=source.get("name") or source.get("source"),
                        model_args=source.get("args"), plans=[*source.get("plans", []), result.plan.to_json()],
                        **meta)
    else:
        save_checkpoint(out, result.model, model_name=None, architecture=True, **meta)
    lines = [result.report.format_table(),
             f"\ncompact {WEIGHTS_FILE} {(out / WEIGHTS_FILE).stat().st_size:,} bytes; parameters "
             f"{result.report.params_before:,} -> {result.report.params_after:,}; max |compact - masked| output "
             f"difference on a random batch {diff:.2e}"]
    return lines + _not_compacted(result)


def _not_compacted(result) -> list[str]:
    """A line naming the layers compaction left as they were (pruned units still there), if any."""
    if not result.report.skipped:
        return []
    return [f"not compacted: {', '.join(r.name for r in result.report.skipped)} (their pruned units stay, as zeros; "
            f"see the note column of `prunekit compact`)"]


def _onnx(model: nn.Module, out: Path, options: ExportOptions) -> list[str]:
    result, _ = compacted(model, options)
    info = export_onnx(result.model, out, input_shape=options.input_shape, example_inputs=options.example_inputs)
    return [f"ONNX file {info.file_bytes:,} bytes (compact model); onnxruntime vs PyTorch max difference "
            f"{info.max_abs_diff:.2e}", *_not_compacted(result)]


EXPORTERS.register("sparse", Exporter("sparse", "file", _sparse, language_models=True),
                   description="one safetensors file, each tensor as CSR, CSR with 8-bit relative indices, "
                               "bitmask + values or dense, whichever is smallest")
EXPORTERS.register("compact", Exporter("compact", "folder", _compact),
                   description="a compact checkpoint folder: dead units removed (a JSON architecture, or the "
                               "model's source and its compaction plans)")
EXPORTERS.register("onnx", Exporter("onnx", "file", _onnx),
                   description="the compact model as ONNX, checked against onnxruntime")


def _compressed(model: nn.Module, out: Path, options: ExportOptions) -> list[str]:
    if options.checkpoint is None:
        raise ConfigError("the compressed format writes a checkpoint: export one loaded with load_checkpoint")
    info = export_checkpoint_compressed(options.checkpoint, out)
    lines = [f"{t.name:24s} {t.bits} bits, {t.nonzeros:>9,} non-zero: codes {t.code_bytes:,} B, positions "
             f"{t.position_bytes:,} B, table {t.table_bytes:,} B" for t in info.tensors]
    coded = {t.name for t in info.tensors}
    others = [f"{name}.weight" for name, m in prunable_layers(model) if f"{name}.weight" not in coded]
    if others:
        lines.append(f"stored as they are (more than 256 distinct values; `prunekit compress` quantizes them): "
                     f"{', '.join(others)}")
    reloaded = load_compressed_checkpoint(out, model_source=options.source.get("source")).model
    lines.append(f"compressed file {info.file_bytes:,} bytes; round trip: max output difference on a random batch "
                 f"{max_output_diff(reloaded, model, options):.2e}")
    return lines


EXPORTERS.register("compressed", Exporter("compressed", "file", _compressed),
                   description="Deep Compression's file: weights of at most 256 values (shared by prunekit "
                               "compress) as entropy-coded codes and positions, the rest as it is; lossless")
