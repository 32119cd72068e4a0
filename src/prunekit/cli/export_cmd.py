"""The three exporters of ``prunekit export`` (registered by :mod:`prunekit.cli.compact_cmd`)."""

from __future__ import annotations

import argparse

import torch

from ..checkpoint import WEIGHTS_FILE
from ..compact_io import load_any_checkpoint, save_compact
from ..export import export_sparse, load_sparse
from ..onnx_export import export_onnx
from ..prune.compact import compact
from .compact_cmd import compact_checked, dense_bytes


def export_sparse_cmd(args: argparse.Namespace) -> int:
    model, _, _, _ = load_any_checkpoint(args.checkpoint)  # the mask is already applied
    if args.compact:
        model = compact(model).model
    info = export_sparse(model, args.out, fp16=args.fp16)
    for t in info.tensors:
        print(f"{t.name:24s} {'x'.join(map(str, t.shape)):>14s} {t.encoding:8s} {t.stored_dtype:8s} "
              f"{t.nbytes:>11,} B  ({t.dense_nbytes / max(t.nbytes, 1):6.1f}x)")
    reference = dense_bytes(args.checkpoint)
    print(f"\nsparse file {info.file_bytes:,} bytes; dense fp32 {WEIGHTS_FILE} {reference:,} bytes: "
          f"{reference / info.file_bytes:.2f}x smaller{' (fp16 values)' if args.fp16 else ''}")
    state = load_sparse(args.out)
    model.eval()
    x = torch.randn(64, *args.input_shape)
    with torch.inference_mode():
        want = model(x)
        model.load_state_dict(state)
        diff = (model(x) - want).abs().max().item()
    print(f"round trip: max output difference on a random batch {diff:.2e} -> {args.out}")
    return 0


def export_compact_cmd(args: argparse.Namespace) -> int:
    result, diff, config, metrics = compact_checked(args.checkpoint, args.input_shape)
    out = save_compact(args.out, result.model, report=result.report, source=config.get("model"), metrics=metrics)
    before, after = dense_bytes(args.checkpoint), (out / WEIGHTS_FILE).stat().st_size
    print(f"compact {WEIGHTS_FILE} {after:,} bytes; dense {before:,} bytes: {before / after:.2f}x smaller; "
          f"parameters {result.report.params_before:,} -> {result.report.params_after:,}; "
          f"max output difference {diff:.2e} -> {out}")
    return 0


def export_onnx_cmd(args: argparse.Namespace) -> int:
    result, _, _, _ = compact_checked(args.checkpoint, args.input_shape)
    info = export_onnx(result.model, args.out, input_shape=args.input_shape)
    before = dense_bytes(args.checkpoint)
    print(f"ONNX file {info.file_bytes:,} bytes (compact model); dense fp32 {WEIGHTS_FILE} {before:,} bytes: "
          f"{before / info.file_bytes:.2f}x smaller; onnxruntime vs PyTorch max difference "
          f"{info.max_abs_diff:.2e} -> {info.path}")
    return 0


EXPORTERS = {"sparse": export_sparse_cmd, "compact": export_compact_cmd, "onnx": export_onnx_cmd}
