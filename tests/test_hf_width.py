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


def test_what_no_standard_config_expresses_is_a_clear_error_and_writes_nothing(tmp_path):
    gpt2 = tiny_folder(str(tmp_path), "gpt2")  # GPT-2's heads are sized by n_embd, the residual width too
    with pytest.raises(ConfigError, match="no standard GPT2Config gives the compacted shapes"):
        prune_pretrained("hf:" + gpt2, PruneSpec("unit"), 50.0, out=tmp_path / "heads", **SMALL)
    assert not (tmp_path / "heads").exists()
    mlp = prune_pretrained("hf:" + gpt2, PruneSpec("unit", layers=["*mlp*"]), 50.0, out=tmp_path / "mlp", **SMALL)
    assert mlp.config_changes == {"n_inner": [None, 64]}  # unset (4 x n_embd) before: written out now
    llama = tiny_folder(str(tmp_path), "llama")
    with pytest.raises(ConfigError, match="every layer alike"):
        prune_pretrained("hf:" + llama, PruneSpec("unit", scope="global"), 50.0, out=tmp_path / "global", **SMALL)
    model = load("hf:" + llama).model
    example = {"input_ids": torch.arange(16)[None]}
    pruner = Pruner(model, PruneSpec("unit", layers=["*layers.0.mlp*"]), example)
    with pytest.raises(ConfigError, match="no standard LlamaConfig"):  # one layer narrower than the other
        compact_pretrained(model, pruner.prune(50.0), pruner.structure)


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
    assert "target 33,000 parameters: uniform sparsity" in capsys.readouterr().out
    record = json.loads((tmp_path / "p" / "prunekit.json").read_text())
    search = record["pruning"]["target_params"]
    assert search["params"] == record["metrics"]["params"] == 39072 - 32 * 192 <= 33000
    assert all(params > 33000 for sparsity, params in search["tried"] if sparsity < search["sparsity"] - 1)
    assert load("hf:" + str(tmp_path / "p")).model.config.intermediate_size == 32
    for extra, error in ((["--target-params", "100"], "width pruning cannot bring the model to 100 parameters"),
                         (["--target-params", "1M"], "already at most the target"),
                         (["--target-params", "30K", "--sparsity", "50"], "one-shot unit pruning alone")):
        assert main(["prune", "--model", "hf:" + folder, *extra, "--out", str(tmp_path / "q"), *common]) == 2
        assert error in capsys.readouterr().err
    assert not (tmp_path / "q").exists()
