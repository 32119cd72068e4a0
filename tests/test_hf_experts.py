"""Expert pruning of mixture-of-experts language models: REAP saliency, router rows, a standard config."""

from __future__ import annotations

import json

import pytest
import torch
from fresh_load import check_fresh, expect

from prunekit.cli import main
from prunekit.errors import ConfigError
from prunekit.hf import load
from prunekit.hf.experts import drop_experts, expert_saliency, moe_layers, prune_experts
from prunekit.hf.tiny import tiny_folder

pytest.importorskip("transformers")

SMALL = dict(seqlen=32, held_out=512, calibration_batches=2, progress=False)


def test_the_least_salient_experts_go_with_their_router_rows_into_a_folder_stock_transformers_loads(tmp_path):
    folder = tiny_folder(str(tmp_path), "mixtral")
    result = prune_experts("hf:" + folder, 2, out=tmp_path / "e2", **SMALL)
    assert result.params < result.params_dense and len(result.saliency) == 2
    small = load("hf:" + str(result.path)).model
    assert small.config.num_local_experts == 2 and small.config.num_experts_per_tok == 2
    dense = load("hf:" + folder).model
    for i, scores in enumerate(result.saliency):  # the kept experts are the most salient, in their order
        kept = sorted(sorted(range(4), key=lambda e: -scores[e])[:2])
        assert torch.equal(small.model.layers[i].mlp.gate.weight, dense.model.layers[i].mlp.gate.weight[kept])
        assert torch.equal(small.model.layers[i].mlp.experts.down_proj,
                           dense.model.layers[i].mlp.experts.down_proj[kept])
    record = json.loads((result.path / "prunekit.json").read_text())
    assert record["pruning"]["removed_per_layer"] == 2
    ids = torch.randint(0, 300, (1, 10))
    check_fresh([(str(result.path), expect(small, ids, tmp_path / "e2.expected"), 2)])


def test_an_expert_that_adds_nothing_scores_zero_and_goes_first(tmp_path):
    model = load("hf:" + tiny_folder(str(tmp_path), "mixtral")).model
    with torch.no_grad():
        for layer in model.model.layers:
            layer.mlp.experts.down_proj[1].zero_()  # expert 1 writes zeros
    layers = moe_layers(model)
    saliency = expert_saliency(model, layers, torch.randint(0, 300, (2, 16)))
    assert all(scores[1] == 0.0 and min(scores[:1] + scores[2:]) > 0 for scores in saliency)
    small = drop_experts(model, layers, saliency, 1)
    assert small.config.num_local_experts == 3
    kept = small.model.layers[0].mlp.experts.down_proj
    assert not any(torch.equal(kept[e], torch.zeros_like(kept[e])) for e in range(3))


def test_impossible_expert_counts_and_dense_models_are_clear_errors(tmp_path, capsys):
    mixtral = tiny_folder(str(tmp_path), "mixtral")
    with pytest.raises(ConfigError, match="router picks 2 per token, so give 1 to 2"):
        prune_experts("hf:" + mixtral, 3, out=tmp_path / "e3", **SMALL)
    llama = tiny_folder(str(tmp_path), "llama")
    with pytest.raises(ConfigError, match="has no mixture-of-experts layer"):
        prune_experts("hf:" + llama, 1, out=tmp_path / "l1", **SMALL)
    assert not (tmp_path / "e3").exists() and not (tmp_path / "l1").exists()
    assert main(["drop-experts", "--model", "hf:" + mixtral, "--experts", "1", "--out", str(tmp_path / "e1"),
                 "--seqlen", "32", "--held-out-tokens", "512", "--calibration-batches", "2", "--quiet"]) == 0
    assert "removed 1 experts of each layer" in capsys.readouterr().out
