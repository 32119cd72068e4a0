"""Deep Compression: k-means weight sharing with trained centroids, uniform quantization that keeps zeros,
entropy-coded files that decode bit-exactly, and the errors for bad input."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from prunekit.deploy.compressed import FORMAT_VERSION, MAGIC, export_compressed, load_compressed, load_compressed_model
from prunekit.deploy.entropy import decode, encode, gap_symbols, positions_from_gaps
from prunekit.errors import CheckpointError, ConfigError
from prunekit.prune import prune_model
from prunekit.quantize import QuantizedWeight, kmeans_1d, share_weights
from prunekit.training import TrainConfig, train


def pruned_mlp(seed: int = 0, sparsity: float = 80.0) -> nn.Sequential:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(30, 40), nn.ReLU(), nn.Linear(40, 20), nn.ReLU(), nn.Linear(20, 5))
    prune_model(model, "weight", sparsity, include_output=True)
    return model


def test_kmeans_finds_known_clusters_from_a_linear_start():
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([-2.0, -0.5, 0.7, 3.0])
    values = torch.cat([c + 0.01 * torch.randn(200, generator=gen) for c in centres])
    centroids, codes = kmeans_1d(values[torch.randperm(800, generator=gen)], 4)
    assert torch.allclose(centroids, centres, atol=0.01)
    assert torch.bincount(codes).tolist() == [200, 200, 200, 200]


def test_centroid_gradients_are_the_summed_gradients_of_their_weights():
    model = pruned_mlp()
    reference = [m.weight.detach().clone() for m in model if isinstance(m, nn.Linear)]
    shared = share_weights(model, 3)
    x = torch.randn(16, 30)
    # the same forward on plain weights equal to the shared values gives the weight gradients
    plain = nn.Sequential(*[nn.Linear(m.in_features, m.out_features) if isinstance(m, nn.Linear) else m for m in model])
    with torch.no_grad():
        for p, m in zip(plain, model):
            if isinstance(m, nn.Linear):
                p.weight.copy_(m.weight)
                p.bias.copy_(m.bias)
    model(x).square().sum().backward()
    plain(x).square().sum().backward()
    for (name, codebook), p, before in zip(shared.codebooks.items(), [plain[0], plain[2], plain[4]], reference):
        codes = model[int(name)].parametrizations.weight[0].codes
        kept = before != 0
        want = torch.zeros(codebook.numel()).index_add_(0, codes[kept], p.weight.grad[kept])
        assert torch.allclose(codebook.grad, want, rtol=1e-5, atol=1e-6)


def test_zeros_stay_zero_through_sharing_and_fine_tuning_and_only_centroids_move():
    model = pruned_mlp()
    zeros = {n: m.weight.detach() == 0 for n, m in model.named_children() if isinstance(m, nn.Linear)}
    shared = share_weights(model, 2)
    before = {n: c.detach().clone() for n, c in shared.codebooks.items()}
    x, y = torch.randn(256, 30), torch.randint(0, 5, (256,))
    train(model, (x, y), TrainConfig(epochs=2, batch_size=32, lr=0.05, weight_decay=0.0), progress=False)
    assert any(not torch.equal(before[n], c) for n, c in shared.codebooks.items())
    quantized = shared.freeze()
    for name, module in model.named_children():
        if isinstance(module, nn.Linear):
            assert (module.weight[zeros[name]] == 0).all()
            assert module.weight.unique().numel() <= 2 ** 2 + 1
            assert torch.equal(quantized[f"{name}.weight"].dense(), module.weight.detach())
    assert not hasattr(model[0], "parametrizations")  # plain parameters again


def test_uniform_quantization_keeps_zeros_and_rounds_per_channel():
    weight = torch.randn(8, 12)
    weight[weight.abs() < 0.8] = 0
    for bits in (8, 4):
        q = QuantizedWeight.from_uniform("w", weight, bits)
        dense = q.dense()
        assert (dense[weight == 0] == 0).all()
        step = weight.abs().amax(dim=1, keepdim=True) / (2 ** (bits - 1) - 1)
        assert ((dense - weight).abs() <= step / 2 + 1e-6).all()


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 12), cols=st.integers(1, 40), density=st.floats(0.0, 1.0), bits=st.integers(1, 8),
       uniform=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_encode_decode_is_bit_exact(tmp_path_factory, rows, cols, density, bits, uniform, seed):
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(rows, cols, generator=gen) * (torch.rand(rows, cols, generator=gen) < density)
    if uniform:
        if bits < 2:
            bits = 2
        q = QuantizedWeight.from_uniform("0.weight", weight, bits)
    else:
        kept = weight != 0
        clusters = min(2 ** bits, int(kept.sum()))
        if clusters == 0:
            return
        centroids, codes = kmeans_1d(weight[kept], clusters)
        table = torch.cat([centroids, torch.zeros(2 ** bits - clusters)])
        q = QuantizedWeight("0.weight", (rows, cols), "shared", bits, torch.nonzero(kept.reshape(-1))[:, 0], codes,
                            table)
    model = nn.Sequential(nn.Linear(cols, rows, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(q.dense())
    path = tmp_path_factory.mktemp("z") / "m.pkz"
    info = export_compressed(model, {"0.weight": q}, path)
    loaded = load_compressed(path)
    assert torch.equal(loaded.state_dict["0.weight"], model[0].weight.detach())
    back = loaded.quantized["0.weight"]
    assert torch.equal(back.positions, q.positions) and torch.equal(back.codes, q.codes)
    assert info.accounted_bytes() == info.file_bytes == path.stat().st_size


def test_gaps_longer_than_the_cap_use_fillers_and_come_back():
    positions = np.array([0, 1, 2, 40, 1000, 1001, 5000], dtype=np.int64)
    for cap in (16, 256):
        symbols = gap_symbols(positions, cap)
        assert symbols.max() <= cap - 1
        assert positions_from_gaps(symbols, cap).tolist() == positions.tolist()


def test_entropy_coding_of_one_symbol_and_of_nothing():
    assert decode(encode(np.zeros(50, dtype=np.int64)), 50).tolist() == [0] * 50
    assert decode(encode(np.zeros(0, dtype=np.int64)), 0).size == 0
    skewed = np.array([0] * 900 + [1] * 90 + [2] * 10)
    assert len(encode(skewed).words) < 900 * 2 / 8  # below 2 bits a symbol: entropy ~0.52 bits


def test_the_compressed_file_runs_like_the_quantized_model(tmp_path):
    model = pruned_mlp(sparsity=90.0)
    quantized = share_weights(model, 3).freeze()  # the last layer keeps 10 weights: 8 centroids at most
    info = export_compressed(model, quantized, tmp_path / "m.pkz", metadata={"note": "test"})
    fresh = nn.Sequential(nn.Linear(30, 40), nn.ReLU(), nn.Linear(40, 20), nn.ReLU(), nn.Linear(20, 5))
    load_compressed_model(info.path, fresh)
    x = torch.randn(64, 30)
    assert torch.equal(fresh(x), model(x))
    assert load_compressed(info.path).metadata == {"note": "test"}
    assert info.file_bytes < info.dense_bytes / 4


def test_bad_bits_too_many_centroids_and_an_all_zero_layer_are_refused():
    for bits in (0, 9, 2.5, True):
        with pytest.raises(ConfigError, match="bits must be an integer from 1 to 8"):
            share_weights(pruned_mlp(), bits)
    with pytest.raises(ConfigError, match="fewer than the 256 centroids"):
        share_weights(pruned_mlp(sparsity=99.0), 8)
    model = pruned_mlp()
    with torch.no_grad():
        model[2].weight.zero_()
    with pytest.raises(ConfigError, match="2 has no non-zero weights"):
        share_weights(model, 3)
    with pytest.raises(ConfigError, match="no prunable layer named 'nope'"):
        share_weights(pruned_mlp(), 3, layers=["nope"])
    with pytest.raises(ConfigError, match="no bits given for 0"):
        share_weights(pruned_mlp(), {"conv": 8})
    with pytest.raises(ConfigError, match="'fc9' in the bits is neither a layer kind"):
        share_weights(pruned_mlp(), {"linear": 4, "fc9": 2})
    few = pruned_mlp(sparsity=97.0)  # 36, 24 and 3 weights left: the error suggests bits that fit
    with pytest.raises(ConfigError, match=r"0 keeps 36 non-zero weights, fewer than the 256 centroids .*--bits \.\.\.,0=5"):
        share_weights(few, {"linear": 8})
    shared = share_weights(few, {"linear": 4, "4": 1})  # a layer's name overrides its kind
    assert shared.bits == {"0": 4, "2": 4, "4": 1}


def test_export_refuses_codes_that_are_not_the_models_weights(tmp_path):
    model = pruned_mlp()
    quantized = share_weights(model, 3).freeze()
    with torch.no_grad():
        model[0].weight[model[0].weight != 0] += 1.0
    with pytest.raises(ConfigError, match="0.weight: the model's weight is not what its codes give"):
        export_compressed(model, quantized, tmp_path / "m.pkz")
    assert not (tmp_path / "m.pkz").exists()


def test_truncated_corrupted_foreign_and_newer_files_are_refused_by_name(tmp_path):
    model = pruned_mlp()
    path = export_compressed(model, share_weights(model, 3).freeze(), tmp_path / "m.pkz").path
    data = path.read_bytes()
    cases = {"cut.pkz": (data[:-100], "truncated or corrupted"),
             "flip.pkz": (data[:200] + bytes([data[200] ^ 1]) + data[201:], "truncated or corrupted"),
             "other.pkz": (b"PK\x03\x04 not ours" * 10, "is not a prunekit compressed file"),
             "tiny.pkz": (MAGIC + b"\x01", "is truncated"),
             "newer.pkz": (MAGIC + struct.pack("<II", FORMAT_VERSION + 1, 2) + data[len(MAGIC) + 8:],
                           f"format version {FORMAT_VERSION + 1}; this prunekit reads versions up to")}
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError, match=message) as err:
            load_compressed(tmp_path / name)
        assert name in str(err.value)
    with pytest.raises(CheckpointError, match="no such compressed file"):
        load_compressed(tmp_path / "missing.pkz")
    wrong = nn.Sequential(nn.Linear(30, 41), nn.ReLU(), nn.Linear(41, 20), nn.ReLU(), nn.Linear(20, 5))
    with pytest.raises(CheckpointError):
        load_compressed_model(path, wrong)


def test_gptq_holds_the_mask_beats_round_to_nearest_and_equals_it_without_correlations():
    from prunekit.quantize import dequantize_uniform, gptq_quantize, quantize_uniform

    gen = torch.Generator().manual_seed(3)
    x = torch.randn(1024, 24, generator=gen) @ torch.randn(24, 24, generator=gen)  # correlated inputs
    w = torch.randn(16, 24, generator=gen) * (torch.rand(16, 24, generator=gen) > 0.6)
    for bits in (8, 4, 3):
        codes, scales = gptq_quantize(w, x.T @ x, bits, block_size=8)
        near, near_scales = quantize_uniform(w, bits)
        assert (codes[w == 0] == 0).all() and int(codes.abs().max()) <= 2 ** (bits - 1) - 1
        assert torch.equal(scales, near_scales)

        def error(v):
            return float((x @ (v - w).T).pow(2).sum())
        assert error(dequantize_uniform(codes, scales)) < error(dequantize_uniform(near, near_scales))
        same, _ = gptq_quantize(w, torch.eye(24), bits)  # nothing to compensate through: round to nearest
        assert torch.equal(same, near)
    with pytest.raises(ConfigError, match="bits must be an integer from 2 to 8"):
        gptq_quantize(w, x.T @ x, 1)


def test_gptq_of_a_model_keeps_zeros_and_gives_the_codes_the_model_holds():
    from prunekit.quantize import gptq_model

    model = pruned_mlp(sparsity=70.0)
    zeros = {n: m.weight.detach() == 0 for n, m in model.named_children() if isinstance(m, nn.Linear)}
    layers = {n: m for n, m in model.named_children() if isinstance(m, nn.Linear)}
    quantized = gptq_model(model, layers, torch.randn(256, 30), lambda name, module: 4, batches=2, progress=False)
    assert sorted(quantized) == ["0.weight", "2.weight", "4.weight"]
    for name, module in layers.items():
        assert (module.weight[zeros[name]] == 0).all()
        assert torch.equal(quantized[f"{name}.weight"].dense(), module.weight.detach())
        assert module.weight.unique().numel() <= 2 * (2 ** 3 - 1) * module.weight.shape[0] + 1


def test_prunekit_compress_writes_a_file_every_command_takes_as_a_checkpoint(baseline, tmp_path, capsys):
    from prunekit.cli import main
    from prunekit.deploy.compressed_checkpoint import load_compressed_checkpoint

    out = tmp_path / "z"
    assert main(["compress", "--checkpoint", str(baseline), "--sparsity", "90", "--bits", "4", "--centroid-epochs",
                 "0.05", "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "centroids trained" in printed and "coded" in printed
    report = json.loads((out / "compress.json").read_text())
    coded = report["stages"][-1]
    assert coded["bytes"] == (out / "model.pkz").stat().st_size and coded["ratio"] > 15
    ckpt = load_compressed_checkpoint(out / "model.pkz")
    assert ckpt.metrics["test_accuracy"] == coded["test_accuracy"] and ckpt.mask.sparsity() > 89
    assert main(["info", str(out / "model.pkz")]) == 0
    assert main(["export", "--checkpoint", str(out / "model.pkz"), "--format", "compressed",
                 "--out", str(tmp_path / "again.pkz")]) == 0
    assert "max output difference on a random batch 0.00e+00" in capsys.readouterr().out
    again = load_compressed_checkpoint(tmp_path / "again.pkz")
    state = again.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in ckpt.model.state_dict().items())  # bit for bit
    assert main(["export", "--checkpoint", str(baseline), "--format", "compressed", "--out",
                 str(tmp_path / "dense.pkz")]) == 0
    assert "stored as they are" in capsys.readouterr().out  # fp32 weights are not quantized by an export


def test_int8_inference_keeps_pruned_weights_zero_and_the_codes_of_weights_on_the_grid(tmp_path):
    pytest.importorskip("onnxruntime")
    from prunekit.bench.int8 import Int8Model, int8_latency
    from prunekit.quantize.codes import QuantizedWeight

    model = pruned_mlp(sparsity=80.0).eval()
    for m in model:
        if isinstance(m, nn.Linear):
            with torch.no_grad():
                m.weight.copy_(QuantizedWeight.from_uniform("w", m.weight.detach(), 8).dense())
    zeros = sum(int((m.weight == 0).sum()) for m in model if isinstance(m, nn.Linear))
    int8 = Int8Model.build(model, (30,), tmp_path)
    assert int8.zero_weights == zeros and int8.weights == sum(m.weight.numel() for m in model if isinstance(m, nn.Linear))
    import onnx
    stored = [onnx.numpy_helper.to_array(t) for t in onnx.load(str(int8.path)).graph.initializer
              if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 2]
    ours = [QuantizedWeight.from_uniform("w", m.weight.detach(), 8) for m in model if isinstance(m, nn.Linear)]
    for q in ours:  # onnxruntime kept prunekit's codes, whichever way it laid the matrix out
        codes = torch.zeros(q.shape, dtype=torch.int64).reshape(-1)
        codes[q.positions] = q.codes - 127
        codes = codes.reshape(q.shape).numpy()
        assert any(a.shape == codes.shape and (a == codes).all() or a.shape == codes.T.shape and (a == codes.T).all()
                   for a in stored)
    x = torch.randn(64, 30)
    assert (int8(x) - model(x)).abs().max() < 0.2 * model(x).abs().max()  # uint8 activations: coarse here
    rows = int8_latency(model, {"int8": int8}, (30,), batch_sizes=(1, 8), repeats=3)
    assert [(r["batch"], r["version"]) for r in rows] == [(1, "fp32 (PyTorch)"), (1, "int8"), (8, "fp32 (PyTorch)"), (8, "int8")]
    assert all(r["ms"] > 0 for r in rows) and rows[0]["ratio"] == 1.0


def test_a_language_model_quantized_with_gptq_keeps_its_zeros_and_loads_with_stock_transformers(tmp_path):
    pytest.importorskip("transformers")
    import subprocess
    import sys

    from prunekit.cli import main
    from prunekit.hf import load

    from prunekit.hf.tiny import tiny_folder

    folder = tiny_folder(str(tmp_path), "llama")
    small = ["--seqlen", "64", "--held-out-tokens", "1024", "--quiet"]
    assert main(["prune", "--model", f"hf:{folder}", "--sparsity", "50", "--criterion", "wanda",
                 "--calibration-batches", "2", "--out", str(tmp_path / "w50"), *small]) == 0
    assert main(["compress", "--model", f"hf:{tmp_path / 'w50'}", "--quantization", "gptq", "--bits", "4",
                 "--calibration-batches", "2", "--out", str(tmp_path / "q"), *small]) == 0
    pruned, quantized = load(f"hf:{tmp_path / 'w50'}").model, load(f"hf:{tmp_path / 'q'}").model
    decoded = load_compressed(tmp_path / "q" / "model.pkz").state_dict
    for name, param in quantized.named_parameters():
        assert torch.equal(decoded[name], param.detach()), name  # the file holds the folder's weights
        if name.endswith("proj.weight"):
            assert (param[pruned.get_parameter(name) == 0] == 0).all(), name  # pruning's zeros kept
            assert (param.detach().reshape(param.shape[0], -1).unique(dim=None).numel() <= 2 ** 4 * param.shape[0])
    record = json.loads((tmp_path / "q" / "prunekit.json").read_text())
    assert record["compression"]["quantization"] == "gptq" and record["metrics"]["perplexity"] > 1
    ids = torch.randint(0, 300, (1, 12))
    with torch.no_grad():
        want = quantized(input_ids=ids).logits
    script = ("import sys, torch; from transformers import AutoModelForCausalLM; "
              "m = AutoModelForCausalLM.from_pretrained(sys.argv[1]).eval(); "
              "ids = torch.tensor([[" + ",".join(map(str, ids[0].tolist())) + "]]); "
              "import safetensors.torch as st; st.save_file({'logits': m(input_ids=ids).logits.detach()}, sys.argv[2])")
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "q"), str(tmp_path / "logits.safetensors")],
                   check=True, capture_output=True, timeout=300)
    import safetensors.torch

    assert torch.allclose(safetensors.torch.load_file(str(tmp_path / "logits.safetensors"))["logits"], want, atol=1e-5)


def test_a_sweep_compresses_every_point_and_reports_it(tmp_path, baseline):
    from prunekit.study import SweepConfig, run_sweep
    from prunekit.study.report import write_report

    config = SweepConfig(methods=("weight",), sparsities=(50.0, 90.0), compress_bits=4)
    result = run_sweep(config, tmp_path / "s", checkpoint=str(baseline), progress=False, measure=False)
    assert [round(p["sparsity_target"]) for p in result.points] == [50, 90]
    for point in result.points:
        assert point["compressed_bytes"] > 0 and point["compressed_ratio"] > 4
        assert abs(point["compressed_test_accuracy"] - point["test_accuracy"]) < 0.05
    assert result.points[1]["compressed_bytes"] < result.points[0]["compressed_bytes"]
    report = write_report(tmp_path / "s", baseline_accuracy=0.9, config={}, timing="")
    assert "## Compressed" in report.read_text()
    plain = run_sweep(SweepConfig(methods=("weight",), sparsities=(50.0,)), tmp_path / "s", checkpoint=str(baseline),
                      progress=False, measure=False)
    assert "compressed_bytes" not in plain.points[-1]  # another config: its own point, not the compressed one
