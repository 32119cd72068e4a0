"""Decode speed of language models with sparse kernels, the per-layer roofline, GPT-2's Conv1D layers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunekit.bench.generate import generation_speed, kernel_summary, max_logit_difference, sparse_runner
from prunekit.bench.roofline import layer_roofline, read_bandwidth
from prunekit.deploy.sparsify import sparsify
from prunekit.hf import load
from prunekit.hf.tiny import tiny_folder
from prunekit.kernels import available
from prunekit.prune import prune_model

pytest.importorskip("transformers")


def _pruned(tmp_path, arch: str, sparsity: float = 80.0) -> nn.Module:
    model = load("hf:" + tiny_folder(str(tmp_path), arch)).model
    mask = prune_model(model, "weight", sparsity)
    mask.apply_(model)
    return model


def test_a_pruned_language_model_decodes_with_sparse_kernels_to_the_same_tokens(tmp_path):
    model = _pruned(tmp_path, "llama")
    runner = sparse_runner(model, prompt_tokens=16, repeats=2)
    assert max_logit_difference(model, runner, tokens=16) < 1e-5
    rows = generation_speed({"masked": model, "sparse": runner}, prompt_tokens=16, new_tokens=5, repeats=1)
    assert [r["version"] for r in rows] == ["masked", "sparse"]
    assert rows[0]["tokens"] == rows[1]["tokens"] and len(rows[0]["tokens"]) == 5
    assert rows[0]["speedup_decode"] == 1.0 and rows[1]["decode_tokens_per_s"] > 0
    summary = kernel_summary(runner)
    assert all(set(counts) <= {1, 16} for counts in summary.values())


def test_the_logit_check_covers_the_one_token_calls_decode_makes(tmp_path):
    import copy

    model = _pruned(tmp_path, "llama")
    other = copy.deepcopy(model)  # differs only where a layer sees one token at a time
    other.model.layers[0].mlp.down_proj.register_forward_hook(
        lambda module, args, out: out + 1e-2 if args[0].shape[-2] == 1 else out)
    with torch.no_grad():
        ids = torch.randint(0, 300, (1, 16))
        assert torch.equal(model(input_ids=ids).logits, other(input_ids=ids).logits)
    assert max_logit_difference(model, other, tokens=16) > 1e-4
    assert max_logit_difference(model, copy.deepcopy(model), tokens=16) < 1e-6  # the same model: rounding only


def test_gpt2_conv1d_layers_run_sparse_kernels_with_the_same_outputs(tmp_path):
    model = load("hf:" + tiny_folder(str(tmp_path), "gpt2")).model
    with torch.no_grad():  # GPT-2's transposed linear layers, 90% of each weight zeroed
        for m in model.modules():
            if type(m).__name__ == "Conv1D":
                m.weight.mul_(m.weight.abs() > m.weight.abs().flatten().quantile(0.9))
    ids = torch.randint(0, 300, (1, 8))
    runner = sparsify(model, batch_sizes=(1, 8), example_inputs={"input_ids": ids}, repeats=2,
                      kernels=("dense", "prunekit_csr") if available() else ("dense", "scipy_csr"))
    converted = [n for n, m in runner.named_modules() if type(m).__name__ == "SparseLinear"]
    with torch.no_grad():
        assert torch.allclose(runner(input_ids=ids).logits, model(input_ids=ids).logits, rtol=1e-5, atol=1e-5)
    assert all(type(model.get_submodule(n)).__name__ == "Conv1D" for n in converted)


def test_the_roofline_gives_bytes_and_bandwidth_per_layer():
    model = nn.Sequential(nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    prune_model(model, "weight", 90).apply_(model)
    runner = sparsify(model, batch_sizes=(1,), input_shape=(256,), repeats=2)
    bandwidth = read_bandwidth(megabytes=8, repeats=2)
    rows = layer_roofline(runner, repeats=3, bandwidth=bandwidth)
    assert [r["layer"] for r in rows] == ["0", "2"] and bandwidth > 0
    dense_bytes = 128 * 256 * 4 + 128 * 4
    first = rows[0]
    assert first["bytes"] == (dense_bytes if first["kernel"] == "dense" else first["bytes"])
    assert first["bytes"] <= dense_bytes and first["gbps"] == pytest.approx(first["bytes"] / first["ms"] / 1e6)


def test_the_floor_version_has_no_linear_layers_and_keeps_the_original(tmp_path):
    from prunekit.bench.generate import linear_free

    model = load("hf:" + tiny_folder(str(tmp_path), "llama")).model
    free = linear_free(model)
    assert not any(isinstance(m, nn.Linear) for m in free.modules())
    assert any(isinstance(m, nn.Linear) for m in model.modules())
    rows = generation_speed({"model": model, "floor": free}, prompt_tokens=8, new_tokens=3, repeats=1)
    assert rows[1]["decode_tokens_per_s"] > 0


def test_gpt2s_conv1d_layers_are_freed_and_keep_their_layout_on_sparse_kernels(tmp_path):
    from prunekit.bench.generate import linear_free, linear_layout
    from prunekit.deploy.sparsify import is_conv1d

    model = load("hf:" + tiny_folder(str(tmp_path), "gpt2")).model
    conv = [n for n, m in model.named_modules() if is_conv1d(m)]
    assert conv and not any(is_conv1d(m) or isinstance(m, nn.Linear) for m in linear_free(model).modules())
    runner = sparsify(model, plan={conv[0]: {"1": "prunekit_csr"}})  # Conv1D [in, out] becomes [out, in]
    assert linear_layout(runner) == linear_layout(model)


def test_decode_bytes_count_each_layer_in_the_form_its_one_token_kernel_reads(tmp_path):
    from prunekit.bench.generate import decode_bytes, decode_limits, linear_layout
    from prunekit.deploy.sparse_linear import SparseLinear

    model = _pruned(tmp_path, "llama")
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n != "lm_head"]
    runner = sparsify(model, plan={names[0]: {"1": "prunekit_bitmask"}, names[1]: {"1": "prunekit_csr"}})
    dense = sum(m.weight.numel() * 4 + (0 if m.bias is None else m.bias.numel() * 4)
                for m in model.modules() if isinstance(m, nn.Linear))
    assert decode_bytes(model) == dense
    sparse = {n: m for n, m in runner.named_modules() if isinstance(m, SparseLinear)}
    assert set(sparse) == set(names[:2])
    packed = sparse[names[0]].packed("bitmask").nbytes + sparse[names[1]].packed("csr").nbytes
    replaced = sum(dict(model.named_modules())[n].weight.numel() * 4 for n in names[:2])
    assert decode_bytes(runner) == dense - replaced + packed < dense
    assert linear_layout(runner) == linear_layout(model)
    other = load("hf:" + tiny_folder(str(tmp_path / "q"), "qwen2")).model
    assert linear_layout(other) != linear_layout(model)
    rows = [{"version": "a", "decode_s_per_token": 0.5}]
    limits = decode_limits(rows, 0.25, {"a": dense, "b": dense // 2}, dense / 0.25 / 1e9)
    assert limits == {"a": pytest.approx(1.0), "b": pytest.approx(4 / 3)}


def test_the_rounding_floor_changes_only_the_linear_layers_it_names(tmp_path):
    from prunekit.bench.rounding import ExactLinear, exact_linears, rounding_floor
    from prunekit.errors import ConfigError

    model = load("hf:" + tiny_folder(str(tmp_path), "llama")).model
    exact = exact_linears(model)
    kinds = {n: type(m) for n, m in exact.named_modules() if isinstance(m, (nn.Linear, ExactLinear))}
    assert kinds.pop("lm_head") is nn.Linear and set(kinds.values()) == {ExactLinear}  # the head stays as it is
    one = exact_linears(model, ["model.layers.0.self_attn.k_proj"])
    assert [n for n, m in one.named_modules() if isinstance(m, ExactLinear)] == ["model.layers.0.self_attn.k_proj"]
    assert 0.0 < rounding_floor(model, tokens=8, decoded=2) < 1e-4  # it moves the logits, by rounding alone
    with pytest.raises(ConfigError, match="model.norm"):
        exact_linears(model, ["model.norm"])


@pytest.mark.skipif(not available(), reason="prunekit's compiled kernels are not built here")
def test_a_model_quantized_to_8_bits_runs_int8_kernels_with_its_own_logits(tmp_path):
    from prunekit.deploy.sparse_linear import SparseLinear
    from prunekit.quantize.uniform import dequantize_uniform, quantize_uniform

    model = _pruned(tmp_path, "llama", 70.0)
    with torch.no_grad():  # what `prunekit compress --quantization uniform --bits 8` loads as: codes times scales
        for layer in model.model.layers.modules():
            if isinstance(layer, nn.Linear):
                layer.weight.copy_(dequantize_uniform(*quantize_uniform(layer.weight, 8)))
    runner = sparse_runner(model, prompt_tokens=16, repeats=2, values="int8")
    layers = [m for m in runner.modules() if isinstance(m, SparseLinear)]
    assert layers
    for layer in layers:  # the kernels, whatever this machine's timings chose
        layer.choice.update({1: "prunekit_bitmask", 16: "prunekit_csr"})
        assert layer.packed("bitmask").values_type == "int8"
    assert max_logit_difference(model, runner, tokens=16) < 1e-5
