"""Trace a model once with example inputs (``torch.export``, non-strict) and couple the axes of every
value in the graph with the op rules.

Why ``torch.export``: it traces every architecture of the test zoo (residual and concat CNNs,
``nn.MultiheadAttention``, and Hugging Face ResNet, MobileNetV2, ViT, BERT, GPT-2, Llama), where
``torch.fx.symbolic_trace`` fails on every Hugging Face model; its default IR keeps ``linear``,
``conv2d``, norms, ``embedding`` and attention as single ops whose parameters are graph inputs
mapped to their names, and records which module ran each op. The graph is only read: pruning
and compaction act on the original module.
"""

from __future__ import annotations

import contextlib
import io
import traceback
from typing import Any

import torch
from torch import fx, nn

from ..batches import as_args
from ..errors import TraceError
from .context import TraceContext
from .rules import STRUCTURE_RULES, op_name
from .spaces import SpaceTable

IGNORED = {"aten._assert_tensor_metadata", "aten.sym_size", "aten._assert_scalar", "aten.sym_constrain_range_for_size",
           "aten._assert_async", "aten.sym_numel", "aten.sym_stride", "aten.sym_storage_offset"}
"""Ops that only check or read shapes."""

FROZEN_MODULES: set[str] = {"torch.nn.modules.activation.MultiheadAttention"}
"""Modules whose axes are never pruned. ``nn.MultiheadAttention`` packs queries, keys and values in one
projection whose width must equal the model width and a multiple of its head count; add a class path
here (``module.__module__ + "." + qualname``) to keep any module whole."""


def export(model: nn.Module, example_inputs: Any) -> torch.export.ExportedProgram:
    """``torch.export.export(model, ..., strict=False)`` in eval mode without gradients; failures become
    a :class:`TraceError` that names the model, the user's line and what to do."""
    args, kwargs = as_args(example_inputs)
    modes = {m: m.training for m in model.modules()}
    model.eval()
    noise = io.StringIO()
    try:
        with torch.no_grad(), contextlib.redirect_stdout(noise), contextlib.redirect_stderr(noise), \
                without_kv_cache(model):
            return torch.export.export(model, args, kwargs, strict=False)
    except Exception as exc:  # torch raises many types; the message explains
        raise TraceError(_explain(model, exc)) from None
    finally:
        for module, mode in modes.items():
            module.training = mode


@contextlib.contextmanager
def without_kv_cache(model: nn.Module):
    """A model whose config asks for a key/value cache (a Hugging Face language model as it comes,
    ``use_cache=True``) returns a cache object the exporter cannot hold: trace it without one. The
    cache holds activations, not parameters, so the coupled groups are the same."""
    config = getattr(model, "config", None)
    cached = getattr(config, "use_cache", None)
    if cached:
        config.use_cache = False
    try:
        yield
    finally:
        if cached:
            config.use_cache = cached


def _explain(model: nn.Module, exc: Exception) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if "site-packages/torch" not in f.filename and "/torch/" not in f.filename
              and "prunekit/structure" not in f.filename]
    where = f" at {frames[-1].filename}:{frames[-1].lineno} `{(frames[-1].line or '').strip()}`" if frames else ""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    name = type(model).__name__
    if "data-dependent" in str(exc) or "GuardOnDataDependent" in type(exc).__name__:
        return (f"cannot trace {name}.forward{where}: it branches on tensor values (data-dependent control "
                f"flow), so there is no single graph to analyse. Make the branch depend on shapes, use "
                f"torch.where, or prune layers chosen by name without example_inputs ({first})")
    return (f"cannot trace {name} with the example inputs given{where}: {type(exc).__name__}: {first}. "
            f"Pass example_inputs the model accepts (model(*inputs) or model(**inputs) must run)")


def couple(program: torch.export.ExportedProgram, model: nn.Module) -> TraceContext:
    """Walk the exported graph and couple every axis with the op rules."""
    graph = program.graph
    ctx = TraceContext(graph, SpaceTable())
    objects = _objects(model)
    specs = {spec.arg.name: spec for spec in program.graph_signature.input_specs}
    for node in graph.nodes:
        ctx.current = node
        if node.op == "placeholder":
            ctx.layouts[node] = _placeholder(ctx, node, specs.get(node.name), objects)
        elif node.op == "call_function":
            ctx.layouts[node] = _call(ctx, node)
        elif node.op == "output":
            ctx.freeze_layout(ctx.layout(node.args[0]), "a model output")
        else:
            ctx.layouts[node] = ctx.fresh(node, f"unsupported graph node {node.op}")
    _freeze_buffers(ctx, objects)
    return ctx


def _objects(model: nn.Module) -> dict[str, Any]:
    named = dict(model.named_parameters(remove_duplicate=False))
    named.update(dict(model.named_buffers(remove_duplicate=False)))
    return named


def _placeholder(ctx: TraceContext, node: fx.Node, spec, objects: dict[str, Any]):
    kind = getattr(spec, "kind", None)
    target = getattr(spec, "target", None)
    if kind is not None and kind.name in ("PARAMETER", "BUFFER") and target in objects:
        tensor = objects[target]
        key = id(tensor)
        names = [n for n, t in objects.items() if t is tensor]
        ctx.tensor_names.setdefault(key, names)
        if key not in ctx.tensor_spaces:
            ctx.tensor_spaces[key] = [ctx.new_axis(int(d)) for d in tensor.shape]
        node.meta["prunekit_tensor"] = key
        return ctx.tensor_spaces[key]
    return ctx.fresh(node, "a model input" if kind is None or kind.name == "USER_INPUT" else "a constant")


def _call(ctx: TraceContext, node: fx.Node):
    name = op_name(node.target)
    if name in IGNORED:
        return ctx.fresh(node, "shape check")
    for arg in node.all_input_nodes:  # a buffer used by anything but a norm's statistics stays whole
        if "prunekit_tensor" in arg.meta:
            ctx.buffer_uses.setdefault(arg.meta["prunekit_tensor"], set()).add(name)
    if name not in STRUCTURE_RULES:
        return _unknown(ctx, node, name)
    layout = STRUCTURE_RULES.get(name)(ctx, node)
    if FROZEN_MODULES & set(ctx.module_types(node)):
        ctx.freeze_layout([ctx.layout(a) for a in node.all_input_nodes] + [layout], "inside a module kept whole")
    return layout


def _unknown(ctx: TraceContext, node: fx.Node, name: str):
    inputs = [ctx.layout(a) for a in node.all_input_nodes]
    if any(ctx.is_float(a) for a in node.all_input_nodes):
        ctx.unknown.append((name, node.name, ".".join(ctx.modules(node)[-1:]) or "(model)"))
    ctx.freeze_layout(inputs, f"used by {name}, which has no structure rule")
    return ctx.fresh(node, f"output of {name}")


def _freeze_buffers(ctx: TraceContext, objects: dict[str, Any]) -> None:
    """Buffers read by anything but a norm's running statistics (RoPE frequencies, position ids...) stay whole."""
    norm_ops = {"aten.batch_norm", "aten._native_batch_norm_legit_no_training", "aten.native_batch_norm",
                "aten._native_batch_norm_legit", "aten.instance_norm"}
    params = {id(p) for p in objects.values() if isinstance(p, nn.Parameter)}
    for key, spaces in ctx.tensor_spaces.items():
        if key in params:
            continue
        uses = ctx.buffer_uses.get(key, set()) - {"norm statistics"}
        if uses - norm_ops:
            ctx.freeze_layout(spaces, "a buffer read by the computation")
