"""Half-block pruning of language models: the attention or the MLP of chosen blocks removed alone."""

from __future__ import annotations

import inspect
import json

import pytest
import torch

from prunekit.cli import main
from prunekit.compact import Plan
from prunekit.compact.bypass import Bypassed
from prunekit.compact.plan import apply_plan
from prunekit.errors import CheckpointError, ConfigError
from prunekit.hf import load, prune_depth
from prunekit.hf.blocks import decoder_blocks
from prunekit.hf.halves import block_halves, check_removed, choose_halves, drop_halves, half_distances
from prunekit.hf.load import Pretrained
from prunekit.hf.save import save_pretrained
from prunekit.hf.tiny import tiny_folder

pytest.importorskip("transformers")

SMALL = dict(seqlen=32, held_out=512, calibration_batches=2, progress=False)
IDS = torch.randint(0, 300, (1, 10), generator=torch.Generator().manual_seed(3))


def _cached_logits(model, ids):
    """Logits of the last token fed one step after the prompt through the KV cache."""
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    with torch.no_grad():
        past = model(input_ids=ids[:, :-1], use_cache=True).past_key_values
        return model(input_ids=ids[:, -1:], use_cache=True, **{name: past}).logits[:, -1]


@pytest.mark.parametrize("part", ["attention", "mlp"])
def test_each_architecture_loses_halves_into_a_folder_prunekit_loads_with_the_same_logits_and_cache(tmp_path, part):
    for arch in ["llama", "qwen2", "mistral", "phi3", "gemma", "mixtral", "gpt2"]:
        folder = tiny_folder(str(tmp_path), arch, layers=3)
        result = prune_depth("hf:" + folder, 2, out=tmp_path / f"{arch}-{part}", part=part, **SMALL)
        model = load("hf:" + folder).model  # the same halves removed in memory
        name, blocks = decoder_blocks(model)
        removed = sum(p.numel() for i in result.removed for p in getattr(blocks[i], block_halves(blocks[i])[part])
                      .parameters())
        assert result.params == result.params_dense - removed > 0, arch
        branches = drop_halves(model, part, result.removed)
        assert sorted(branches) == [f"{name}.{i}.{block_halves(blocks[i])[part]}" for i in result.removed]
        small = load("hf:" + str(result.path)).model
        assert sum(p.numel() for p in small.parameters()) == result.params, arch
        assert sum(isinstance(m, Bypassed) for m in small.modules()) == 2, arch
        with torch.no_grad():
            full = small(input_ids=IDS).logits
            assert torch.equal(full, model(input_ids=IDS).logits), arch
        # the KV cache counts tokens even where attention is gone (block 0's length is the position)
        assert torch.allclose(_cached_logits(small, IDS), full[:, -1], rtol=1e-4, atol=1e-5), arch
        assert small.generate(IDS, max_new_tokens=4, do_sample=False).shape == (1, 14), arch
        if arch == "qwen2":  # a static cache (allocated at the config's sizes) and a batch of two give the same
            batch = torch.cat([IDS, IDS.flip(1)])
            dynamic = small.generate(batch, max_new_tokens=4, do_sample=False)
            assert torch.equal(dynamic, small.generate(batch, max_new_tokens=4, do_sample=False, use_cache=False))
            assert torch.equal(dynamic, small.generate(batch, max_new_tokens=4, do_sample=False,
                                                       cache_implementation="static"))
        record = json.loads((result.path / "prunekit.json").read_text())["pruning"]
        assert record["part"] == part and record["removed"] == result.removed, arch


def test_a_branch_that_adds_nothing_is_the_first_removed(tmp_path):
    model = load("hf:" + tiny_folder(str(tmp_path), "llama", layers=4)).model
    blocks = decoder_blocks(model)[1]
    with torch.no_grad():
        blocks[2].self_attn.o_proj.weight.zero_()
        blocks[1].mlp.down_proj.weight.zero_()
    calibration = torch.randint(0, 300, (2, 16))
    distances = half_distances(model, calibration)
    assert distances["attention"][2] == pytest.approx(0.0, abs=1e-6) and min(distances["attention"][:2]) > 1e-3
    assert distances["mlp"][1] == pytest.approx(0.0, abs=1e-6) and distances["mlp"][3] > 1e-3
    assert choose_halves(model, calibration, "attention", 1)[0] == [2]
    assert choose_halves(model, calibration, "mlp", 1)[0] == [1]
    drop_halves(model, "attention", [2])  # a removed half is not chosen again, and cannot be removed twice
    assert 2 not in choose_halves(model, calibration, "attention", 3)[0]
    with pytest.raises(ConfigError, match="3 of the model's 4 blocks have one; give 1 to 3"):
        choose_halves(model, calibration, "attention", 4)
    with pytest.raises(ConfigError, match="already removed: model.layers.2.self_attn"):
        drop_halves(model, "attention", [2])


def test_blocks_whose_halves_are_not_residual_branches_or_not_modules_are_refused(tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    bloom = AutoModelForCausalLM.from_config(AutoConfig.for_model(  # adds the residual inside its attention
        "bloom", n_embed=32, n_head=4, n_layer=2, vocab_size=320)).eval()
    with pytest.raises(ConfigError, match="does not pass its input through.*remove whole blocks instead"):
        half_distances(bloom, torch.randint(0, 300, (1, 8)))
    opt = AutoModelForCausalLM.from_config(AutoConfig.for_model(  # its MLP is two loose linear layers
        "opt", hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=4, vocab_size=320,
        word_embed_proj_dim=32)).eval()
    with pytest.raises(ConfigError, match=r"OPTDecoderLayer: cannot tell its attention and MLP apart.*'fc1', 'fc2'"):
        block_halves(decoder_blocks(opt)[1][0])


def test_halves_compose_with_a_width_plan_and_commands_say_the_form(tmp_path, capsys):
    llama = tiny_folder(str(tmp_path), "llama", layers=3)
    assert main(["prune", "--model", "hf:" + llama, "--method", "unit", "--scope", "global", "--sparsity", "50",
                 "--seqlen", "32", "--held-out-tokens", "512", "--out", str(tmp_path / "global"), "--quiet"]) == 0
    widths = load("hf:" + str(tmp_path / "global")).model
    assert main(["drop-blocks", "--model", "hf:" + str(tmp_path / "global"), "--blocks", "1", "--part", "mlp",
                 "--out", str(tmp_path / "both"), "--seqlen", "32", "--held-out-tokens", "512",
                 "--calibration-batches", "2", "--quiet"]) == 0
    assert "removed the mlp of blocks [" in capsys.readouterr().out.replace("\n", " ")
    both = load("hf:" + str(tmp_path / "both"))
    assert set(both.plan.bypassed) <= {f"model.layers.{i}.mlp" for i in range(3)} and len(both.plan.bypassed) == 1
    assert not any(name.startswith(next(iter(both.plan.bypassed)) + ".") for name in both.plan.tensors)
    kept = [n for n, m in both.model.named_modules() if n.endswith("up_proj")]
    assert len(kept) == 2 and all(both.model.get_submodule(n).out_features ==
                                  widths.get_submodule(n).out_features for n in kept)  # the width plan still holds
    with pytest.raises(ConfigError, match=r"compacted form \(layers of different widths and attention or MLP halves "
                                          r"of blocks removed\): removing blocks needs a standard config"):
        prune_depth("hf:" + str(tmp_path / "both"), 1, out=tmp_path / "d", **SMALL)
    with pytest.raises(ConfigError, match="halves .mlp. are chosen independently"):
        prune_depth("hf:" + llama, 1, out=tmp_path / "c", part="mlp", selection="contiguous", **SMALL)
    assert not (tmp_path / "c").exists()


def test_a_plan_with_a_malformed_or_misplaced_branch_is_refused(tmp_path):
    model = load("hf:" + tiny_folder(str(tmp_path), "llama")).model
    plan = Plan({}).with_bypassed({"model.layers.0.self_attn": {"part": "attention", "outputs": 2, "layer_idx": 0}})
    assert Plan.from_json(plan.to_json()) == plan
    for change, why in [({"part": "ffn"}, "expected"), ({"layer_idx": None}, "an attention branch names the KV-cache"),
                        ({"part": "mlp"}, "an attention branch names")]:
        bad = plan.to_json()
        bad["bypassed"]["model.layers.0.self_attn"].update(change)
        with pytest.raises(CheckpointError, match=f"plan.json is not a valid compaction plan .bypassed 'model.layers.0"
                                                  f".self_attn': {why}"):
            Plan.from_json(bad, "plan.json")

    def branch(part, layer=None):
        return {"part": part, "outputs": 2 if part == "attention" else 0, "layer_idx": layer}

    for branches, why in [({"model.layers.7.mlp": branch("mlp")}, "removes the branch 'model.layers.7.mlp', which the"),
                          ({"model.layers.1.self_attn": branch("attention", 0)}, "the model's module there has "
                                                                                 "layer_idx \\[1\\]"),
                          ({"model.layers.1": branch("mlp"), "model.layers.1.mlp": branch("mlp")},
                           "removes 'model.layers.1.mlp' inside another removed branch")]:
        with pytest.raises(CheckpointError, match=why):
            apply_plan(model, Plan({}).with_bypassed(branches))
    assert not any(isinstance(m, Bypassed) for m in model.modules())
    with pytest.raises(ConfigError, match="plan.json removes 'model.layers.1' as the mlp of a decoder block, which"):
        check_removed(model, {"model.layers.1": branch("mlp")}, "plan.json")  # hf.load checks what it replays
    drop_halves(model, "mlp", [0])  # written without its plan, it would load with random weights: refused
    with pytest.raises(ConfigError, match="has attention or MLP halves removed: no standard config describes it"):
        save_pretrained(Pretrained(model, None, tmp_path, ""), tmp_path / "plain")
    assert not (tmp_path / "plain").exists()


def test_commands_refuse_what_a_compacted_folder_cannot_become_before_reading_text(tmp_path, capsys):
    folder = tiny_folder(str(tmp_path), "llama", layers=3)
    with pytest.raises(ConfigError, match="cannot remove the attention of 4 blocks: 3 of the model's 3"):
        prune_depth("hf:" + folder, 4, out=tmp_path / "a4", part="attention", dataset="text:/no/such/file", **{
            k: v for k, v in SMALL.items()})
    prune_depth("hf:" + folder, 1, out=tmp_path / "a1", part="attention", **SMALL)
    assert main(["export", "--checkpoint", "hf:" + str(tmp_path / "a1"), "--format", "hf",
                 "--out", str(tmp_path / "exported")]) == 2
    assert "compacted form" in capsys.readouterr().err and not (tmp_path / "exported").exists()
