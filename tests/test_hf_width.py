"""Width pruning of language models: MLP channels, attention heads with their key/value groups and the residual
width removed, written in a standard config stock transformers loads."""

from __future__ import annotations

import json

import pytest
import torch
from fresh_load import check_fresh, expect
from torch import nn

from prunekit.cli import main
from prunekit.errors import ConfigError
from prunekit.hf import load, prune_pretrained
from prunekit.hf.tiny import tiny_folder
from prunekit.hf.width import compact_pretrained, kv_rule_holds
from prunekit.prune import Pruner, PruneSpec, prune_model

pytest.importorskip("transformers")

SMALL = dict(seqlen=32, held_out=512, progress=False)
ACTIVATION = dict(criterion="activation", calibration_batches=2)
ARCHITECTURES = {  # what unit pruning finds to remove in each tiny model (Mixtral's experts are not width)
    "llama": {"intermediate_size", "num_attention_heads", "num_key_value_heads"},
    "qwen2": {"intermediate_size", "num_attention_heads", "num_key_value_heads"},
    "mistral": {"intermediate_size", "num_attention_heads", "num_key_value_heads"},
    "phi3": {"intermediate_size", "num_attention_heads", "num_key_value_heads"},
    "gemma": {"intermediate_size", "num_attention_heads", "num_key_value_heads"},
    "mixtral": {"num_attention_heads", "num_key_value_heads"},
}


def test_every_architecture_loses_heads_and_channels_into_a_standard_config_stock_transformers_loads(tmp_path):
    ids = torch.randint(0, 300, (1, 12), generator=torch.Generator().manual_seed(0))
    checks = []
    for arch, settings in ARCHITECTURES.items():
        folder = tiny_folder(str(tmp_path), arch)
        result = prune_pretrained("hf:" + folder, PruneSpec("unit", **ACTIVATION), 50.0, out=tmp_path / f"{arch}-w",
                                  dataset="text:pydoc", **SMALL)
        assert result.params < result.params_dense, arch
        assert {k for k, (before, after) in result.config_changes.items() if before is not None} == settings, arch
        record = json.loads((result.path / "prunekit.json").read_text())
        assert record["compacted"]["exact"] and record["compacted"]["logit_difference"] < 1e-4, arch
        source = load("hf:" + folder).model  # the masked model's logits are the folder's
        result.mask.apply_(source)
        small = load("hf:" + str(result.path)).model
        config = small.config
        assert config.num_attention_heads == 2 and config.num_key_value_heads == 1 and kv_rule_holds(config), arch
        assert sum(p.numel() for p in small.parameters()) == result.params
        checks.append((str(result.path), expect(source, ids, tmp_path / f"{arch}.expected"), 2))
    check_fresh(checks)


def test_the_residual_width_goes_through_the_norms_measured_not_exact(tmp_path):
    folder = tiny_folder(str(tmp_path), "llama")
    result = prune_pretrained("hf:" + folder, PruneSpec("unit", include_inexact=True, **ACTIVATION), 25.0,
                              out=tmp_path / "w", dataset="text:pydoc", **SMALL)
    assert result.config_changes["hidden_size"] == [32, 24]
    record = json.loads((result.path / "prunekit.json").read_text())
    assert not record["compacted"]["exact"] and record["compacted"]["logit_difference"] > 0
    small = load("hf:" + str(result.path)).model
    assert small.model.embed_tokens.weight.shape == (320, 24) and small.model.norm.weight.shape == (24,)
    ids = torch.randint(0, 300, (1, 10))
    checks = [(str(result.path), expect(small, ids, tmp_path / "w.expected"), 2)]
    check_fresh(checks)


def test_round_to_keeps_channel_multiples_and_whole_heads(tmp_path):
    folder = tiny_folder(str(tmp_path), "llama")
    result = prune_pretrained("hf:" + folder, PruneSpec("unit", round_to=24, layers=["*mlp*"], **ACTIVATION), 75.0,
                              out=tmp_path / "r", dataset="text:pydoc", **SMALL)
    assert result.config_changes == {"intermediate_size": [64, 24]}  # 16 kept, rounded up to 24
    with pytest.raises(ConfigError, match="round_to 128 is larger than every pruned layer"):
        prune_pretrained("hf:" + folder, PruneSpec("unit", round_to=128, **ACTIVATION), 50.0, out=tmp_path / "big",
                         dataset="text:pydoc", **SMALL)
    assert not (tmp_path / "big").exists()


def test_the_prune_command_writes_the_smaller_folder(tmp_path, capsys):
    folder = tiny_folder(str(tmp_path), "qwen2")
    text = tmp_path / "corpus.txt"
    text.write_text(__import__("pydoc_data.topics").topics.topics["assert"] * 40)
    assert main(["prune", "--model", "hf:" + folder, "--method", "unit", "--sparsity", "25", "--dataset",
                 f"text:{text}", "--seqlen", "32", "--held-out-tokens", "256", "--out", str(tmp_path / "u25"),
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "parameters" in out and "intermediate_size 64 -> 48" in out and "stock transformers loads" in out
    assert load("hf:" + str(tmp_path / "u25")).model.config.intermediate_size == 48


def test_what_no_standard_config_expresses_is_written_in_prunekits_form_and_said(tmp_path, capsys):
    import transformers

    import prunekit

    llama = tiny_folder(str(tmp_path), "llama")
    assert main(["prune", "--model", "hf:" + llama, "--method", "unit", "--scope", "global", "--sparsity", "50",
                 "--seqlen", "32", "--held-out-tokens", "512", "--out", str(tmp_path / "global"), "--quiet"]) == 0
    assert "needs prunekit to load" in capsys.readouterr().out
    record = json.loads((tmp_path / "global" / "prunekit.json").read_text())
    assert record["compacted"]["form"] == "prunekit" and "no standard LlamaConfig" in record["compacted"]["nonstandard"]
    with pytest.raises(OSError):  # stock transformers finds no weights: it fails, it does not load a wrong model
        transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "global")
    small = load("hf:" + str(tmp_path / "global")).model
    widths = {m.out_features for n, m in small.named_modules() if n.endswith("mlp.up_proj")}
    assert len(widths) == 2, widths  # the layers kept different widths
    source = load("hf:" + llama).model
    pruner = Pruner(source, PruneSpec("unit", scope="global"), {"input_ids": torch.arange(16)[None]})
    compacted = compact_pretrained(source, pruner.prune(50.0), pruner.structure)
    assert compacted.nonstandard and compacted.changes == {}
    ids = torch.randint(0, 300, (1, 10), generator=torch.Generator().manual_seed(1))
    by_hand = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.from_pretrained(tmp_path / "global"))
    by_hand = prunekit.load_compacted(by_hand, tmp_path / "global" / "prunekit-compacted")
    with torch.no_grad():
        assert torch.equal(by_hand(ids).logits, small(ids).logits)
        assert torch.allclose(small(ids).logits, compacted.model(ids).logits, atol=1e-5)
    assert small.generate(ids, max_new_tokens=4, do_sample=False).shape == (1, 14)  # with its KV cache
    with pytest.raises(ConfigError, match="no standard LlamaConfig"):
        compact_pretrained(source, pruner.prune(50.0), pruner.structure, standard_only=True)
    sparse = prune_pretrained("hf:" + str(tmp_path / "global"), PruneSpec("weight"), 50.0, out=tmp_path / "w",
                              **SMALL)  # commands on such a folder write the same form again
    assert (sparse.path / "prunekit-compacted").is_dir() and abs(sparse.sparsity - 50.0) < 1
    assert [p.shape for p in load("hf:" + str(sparse.path)).model.parameters()] == [p.shape for p in small.parameters()]
    from prunekit.hf.depth import prune_depth
    with pytest.raises(ConfigError, match="compacted form"):
        prune_depth("hf:" + str(tmp_path / "global"), 1, out=tmp_path / "d", seqlen=32, held_out=512, progress=False)
    gpt2 = tiny_folder(str(tmp_path), "gpt2")  # GPT-2's heads are sized by n_embd, the residual width too
    heads = prune_pretrained("hf:" + gpt2, PruneSpec("unit"), 50.0, out=tmp_path / "heads", **SMALL)
    assert "no standard GPT2Config" in heads.nonstandard and heads.params < heads.params_dense
    assert sum(p.numel() for p in load("hf:" + str(heads.path)).model.parameters()) == heads.params
    mlp = prune_pretrained("hf:" + gpt2, PruneSpec("unit", layers=["*mlp*"]), 50.0, out=tmp_path / "mlp", **SMALL)
    assert mlp.config_changes == {"n_inner": [None, 64]} and mlp.nonstandard is None  # unset before: written out


def test_activation_scores_are_what_each_unit_adds_to_the_next_layer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4, bias=False), nn.ReLU(), nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        model[0].weight[1] = -10.0  # unit 1 never fires on positive inputs: it adds nothing
        model[2].weight[:, 3] *= 100  # unit 3 is read a hundred times louder
    x = torch.rand(64, 3)
    mask = prune_model(model, "unit", 25.0, criterion="activation", calibration=(x, torch.zeros(64, dtype=torch.long)),
                       example_inputs=x)
    assert mask["0.weight"].any(1).tolist() == [True, False, True, True]
    hidden = torch.relu(x @ model[0].weight.T)
    expected = (hidden.pow(2).sum(0) * model[2].weight.pow(2).sum(0)).sqrt()
    from prunekit.prune.unit_criteria import activation_unit_scores
    from prunekit.prune.units import views_of_groups
    from prunekit.structure import trace

    groups = [g for g in trace(model, x).groups if g.exact]
    scores = activation_unit_scores(model, views_of_groups(model, groups), (x, torch.zeros(64, dtype=torch.long)), 1)
    assert torch.allclose(scores[0].float(), expected, rtol=1e-5)


def test_a_parameter_target_resolves_to_the_smallest_uniform_sparsity_that_meets_it(tmp_path, capsys):
    folder = tiny_folder(str(tmp_path), "llama")  # 39,072 parameters; an MLP channel is 3 x 32 weights, 2 layers
    common = ["--method", "unit", "--layers", "*mlp*", "--seqlen", "32", "--held-out-tokens", "512", "--quiet"]
    assert main(["prune", "--model", "hf:" + folder, "--target-params", "33000", "--out", str(tmp_path / "p"),
                 *common]) == 0
    assert "target at most 33,000 parameters: uniform sparsity" in capsys.readouterr().out
    record = json.loads((tmp_path / "p" / "prunekit.json").read_text())
    search = record["pruning"]["size_target"]
    assert search["kind"] == "params" and search["value"] == search["params"]
    assert search["params"] == record["metrics"]["params"] == 39072 - 32 * 192 <= 33000
    assert all(params > 33000 for sparsity, params in search["tried"] if sparsity < search["sparsity"] - 1)
    assert load("hf:" + str(tmp_path / "p")).model.config.intermediate_size == 32
    for extra, error in ((["--target-params", "100"], "width pruning cannot bring the model to at most 100 parameters"),
                         (["--target-params", "1M"], "already meets the target"),
                         (["--target-params", "30K", "--sparsity", "50"], "one-shot unit pruning alone"),
                         (["--target-params", "30K", "--target-memory", "1MB"], "give one size target"),
                         (["--target-latency", "0.5", "--align-channels", "8"], "--round-to N")):
        assert main(["prune", "--model", "hf:" + folder, *extra, "--out", str(tmp_path / "q"), *common]) == 2
        assert error in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["prune", "--model", "hf:" + folder, "--target-memory", "lots", "--out", str(tmp_path / "q"), *common])
    assert "expected a size such as 300MB" in capsys.readouterr().err
    assert not (tmp_path / "q").exists()


def test_a_memory_target_counts_the_weights_bytes_at_the_dtype(tmp_path, capsys):
    folder = tiny_folder(str(tmp_path), "llama")  # 39,072 fp32 parameters: 156,288 bytes
    common = ["--method", "unit", "--layers", "*mlp*", "--seqlen", "32", "--held-out-tokens", "512", "--quiet"]
    assert main(["prune", "--model", "hf:" + folder, "--target-memory", "132KB", "--out", str(tmp_path / "m"),
                 *common]) == 0
    search = json.loads((tmp_path / "m" / "prunekit.json").read_text())["pruning"]["size_target"]
    assert search["kind"] == "memory" and search["value"] == 4 * search["params"] <= 132_000
    assert all(value > 132_000 for sparsity, value in search["tried"] if sparsity < search["sparsity"] - 1)
    assert main(["prune", "--model", "hf:" + folder, "--target-memory", "66KB", "--dtype", "bf16",
                 "--out", str(tmp_path / "b"), *common]) == 0  # two bytes a weight: the same plan
    half = json.loads((tmp_path / "b" / "prunekit.json").read_text())["pruning"]["size_target"]
    assert half["params"] == search["params"] and half["value"] == 2 * half["params"]


def test_a_latency_target_times_the_plans_decode_against_the_dense_model(tmp_path, monkeypatch):
    import prunekit.bench.generate as generate
    from prunekit.hf.targets import SizeTarget, resolve_size_target
    from prunekit.structure import model_structure

    folder = tiny_folder(str(tmp_path), "llama")
    model = load("hf:" + folder).model
    timed = []

    def speed_by_parameters(models, **options):  # a timer that cannot be noisy: time in proportion to weights
        dense, compacted = models.values()
        with torch.no_grad():
            compacted(torch.arange(8)[None])  # the compacted copy runs
        timed.append(compacted)
        size = [sum(p.numel() for p in m.parameters()) for m in (dense, compacted)]
        return [{"speedup_decode": 1.0}, {"speedup_decode": size[0] / size[1]}]

    monkeypatch.setattr(generate, "generation_speed", speed_by_parameters)
    spec = PruneSpec("unit", layers=["*mlp*"])
    structure = model_structure(model, {"input_ids": torch.arange(16)[None]})
    search = resolve_size_target(model, spec, structure, SizeTarget(latency=0.85))
    assert search.tried[0][0] == 99.9 and len(search.tried) > 3  # the extreme plan first, then the bisection
    assert search.value == round(search.params / search.params_dense, 4) <= 0.85
    assert all(ratio > 0.85 for sparsity, ratio in search.tried if sparsity < search.sparsity - 1)
    assert all(m is not model for m in timed) and sum(p.numel() for p in model.parameters()) == search.params_dense
    for bad in (1.5, 0.0):
        with pytest.raises(ConfigError, match="below 1|positive"):
            SizeTarget(latency=bad).check()


def test_depth_and_width_are_planned_together_for_a_size_target(tmp_path, capsys):
    folder = tiny_folder(str(tmp_path), "llama")  # 2 blocks, 39,072 parameters
    common = ["--method", "unit", "--layers", "*mlp*", "--seqlen", "32", "--held-out-tokens", "512", "--quiet"]
    assert main(["prune", "--model", "hf:" + folder, "--target-params", "30000", "--blocks", "auto",
                 "--out", str(tmp_path / "dw"), *common]) == 0
    assert "depth x width: removed blocks" in capsys.readouterr().out
    record = json.loads((tmp_path / "dw" / "prunekit.json").read_text())
    depth = record["pruning"]["depth"]
    assert [c["blocks"] for c in depth["candidates"]] == [0, 1] and all(c["params"] <= 30000 for c in depth["candidates"])
    best = min(depth["candidates"], key=lambda c: c["validation_perplexity"])
    assert depth["removed"] == best["removed"] and record["metrics"]["params"] == best["params"]
    small = load("hf:" + str(tmp_path / "dw")).model  # a standard config: blocks and channels both follow
    assert small.config.num_hidden_layers == 2 - best["blocks"]
    assert sum(p.numel() for p in small.parameters()) == best["params"]
    assert main(["prune", "--model", "hf:" + folder, "--target-params", "36000", "--blocks", "1",
                 "--out", str(tmp_path / "one"), *common]) == 0  # one block alone meets it: the width stays
    fixed = json.loads((tmp_path / "one" / "prunekit.json").read_text())
    assert fixed["pruning"]["depth"]["candidates"][0]["sparsity"] == 0.0
    assert load("hf:" + str(tmp_path / "one")).model.config.num_hidden_layers == 1
    for extra, error in ((["--sparsity", "50", "--blocks", "1"], "--blocks plans depth with a size target"),
                         (["--target-params", "30000", "--blocks", "2"], "0 to 1 or 'auto'")):
        assert main(["prune", "--model", "hf:" + folder, *extra, "--out", str(tmp_path / "q"), *common]) == 2
        assert error in capsys.readouterr().err
    assert not (tmp_path / "q").exists()
