"""Latency benchmark and per-point measurements: structure, ratios, FLOP ratios, CLI (no timed assertions)."""

import json
import math
from pathlib import Path

import pytest
import torch

from prunekit.bench import VERSIONS, benchmark_latency, masked_version, measure_point
from prunekit.cli import main
from prunekit.models import get_model
from prunekit.prune import prune_model, sparsity_report

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_benchmark_rows_cover_every_version_and_batch_size():
    model = get_model("lenet300", seed=0)
    mask = prune_model(model, "unit", 50.0)
    rows = benchmark_latency(model, mask, input_shape=(1, 28, 28), batch_sizes=(1, 8), repeats={1: 3, 8: 3})
    assert [(r.batch, r.version) for r in rows] == [(b, v) for b in (1, 8) for v in VERSIONS]
    by = {(r.batch, r.version): r for r in rows}
    assert by[1, "dense"].ratio == 1.0 and by[1, "dense"].flop_ratio == 1.0 and by[1, "masked"].flop_ratio == 1.0
    report = sparsity_report(model, mask, input_shape=(1, 1, 28, 28))
    compact_flops = 2 * (784 * 150 + 150 * 50 + 50 * 10)
    assert by[8, "compact"].flop_ratio == pytest.approx(compact_flops / report.total.dense_flops)
    assert all(r.median_s > 0 and math.isclose(r.samples_per_s, r.batch / r.median_s) for r in rows)


def test_masked_version_multiplies_by_the_mask_at_every_call():
    model = get_model("lenet300", seed=0).eval()
    mask = prune_model(model, "weight", 80.0)
    masked = masked_version(model, mask)
    with torch.no_grad():
        masked.fc1.weight_orig.fill_(1.0)  # pruned entries stay zero through the mask
    assert torch.equal(masked.fc1.weight != 0, mask["fc1.weight"])


def fake_timer(kernel, fn):
    """Every layer: a sparse kernel 'takes' 1 s, dense 2 s."""
    fn()
    return 2.0 if kernel == "dense" else 1.0


def test_flop_ratio_counts_non_zeros_only_for_layers_running_sparse(monkeypatch):
    from prunekit.deploy import sparsify

    model = get_model("lenet300", seed=0)
    mask = prune_model(model, "weight", 90.0)
    monkeypatch.setitem(sparsify.__kwdefaults__, "timer", fake_timer)  # every masked layer runs sparse
    rows = benchmark_latency(model, mask, input_shape=(1, 28, 28), batch_sizes=(4,), repeats={4: 2})
    by = {r.version: r for r in rows}
    report = sparsity_report(model, mask, input_shape=(1, 1, 28, 28))
    sparse_layers = [r for r in report.rows if r.masked]
    saved = sum(r.dense_flops - r.effective_flops for r in sparse_layers)
    chosen = by["sparse"].flop_ratio
    assert chosen == pytest.approx(1 - saved / report.total.dense_flops)
    assert by["compact"].flop_ratio == 1.0 and by["compact"].param_ratio == 1.0  # weight pruning removes no unit


def test_measure_point_reports_file_size_and_latency_ratios():
    model = get_model("mlp", seed=0)
    mask = prune_model(model, "unit", 75.0)
    point = measure_point(model, mask, "unit", input_shape=(1, 28, 28), repeats=(3, 2))
    assert point["method"] == "unit"
    assert point["dense_file_bytes"] / point["file_bytes"] == pytest.approx(point["file_ratio"])
    assert point["file_ratio"] > 7  # 8.05x fewer parameters after compaction
    assert all(0 < point[k] < math.inf for k in ("latency_b1_ratio", "latency_b256_ratio"))


def test_cli_bench_latency(tmp_path, capsys):
    out = tmp_path / "rows.json"
    code = main(["bench", "latency", "--model", "lenet300", "--method", "unit", "--sparsity", "50",
                 "--batch-sizes", "1,8", "--repeats", "3", "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert all(v in text for v in VERSIONS) and "FLOP ratio" in text
    assert len(json.loads(out.read_text())) == 2 * len(VERSIONS)
    assert main(["bench", "latency", "--model", "lenet300", "--method", "unit"]) == 2
    assert "give --method with --sparsity or --pattern" in capsys.readouterr().err
    assert main(["bench", "latency", "--model", str(EXAMPLES / "models.py") + ":small_resnet"]) == 2
    assert "pass one sample's shape (--input-shape" in capsys.readouterr().err  # no MNIST guess for user models
