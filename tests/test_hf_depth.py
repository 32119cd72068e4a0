"""Depth pruning of language models: whole decoder blocks removed, folders stock transformers loads."""

from __future__ import annotations

import json

import pytest
import torch
from fresh_load import check_fresh, expect

from prunekit.cli import main
from prunekit.errors import ConfigError
from prunekit.hf import load, prune_depth
from prunekit.hf.depth import block_distances, choose_blocks, decoder_blocks, drop_blocks
from prunekit.hf.tiny import tiny_folder

pytest.importorskip("transformers")

SMALL = dict(seqlen=32, held_out=512, calibration_batches=2, progress=False)
ARCHITECTURES = ["llama", "qwen2", "mistral", "phi3", "gemma", "mixtral", "gpt2"]

def test_every_architecture_loses_blocks_into_a_folder_stock_transformers_loads_and_generates_from(tmp_path):
    ids = torch.randint(0, 300, (1, 12))
    checks = []
    for arch in ARCHITECTURES:
        folder = tiny_folder(str(tmp_path), arch, layers=4)
        result = prune_depth("hf:" + folder, 2, out=tmp_path / f"{arch}-d2", **SMALL)
        assert len(result.removed) == 2 and len(result.distances) == 4, arch
        assert result.params < result.params_dense, arch
        model = load("hf:" + folder).model  # the same blocks dropped in memory: the folder's logits
        drop_blocks(model, result.removed)
        record = json.loads((result.path / "prunekit.json").read_text())
        assert record["pruning"]["removed"] == result.removed
        checks.append((str(result.path), expect(model, ids, tmp_path / f"{arch}.expected"), 2))
    check_fresh(checks)


def test_a_block_that_changes_nothing_is_the_first_removed_and_runs_are_consecutive(tmp_path):
    model = load("hf:" + tiny_folder(str(tmp_path), "llama", layers=5)).model
    block = decoder_blocks(model)[1][3]
    with torch.no_grad():  # both residual branches write zeros: the block is the identity
        block.self_attn.o_proj.weight.zero_()
        block.mlp.down_proj.weight.zero_()
    calibration = torch.randint(0, 300, (3, 16))
    distances = block_distances(model, calibration)
    assert distances[3] == pytest.approx(0.0, abs=1e-6) and min(distances[:3] + distances[4:]) > 1e-3
    assert choose_blocks(model, calibration, 1)[0] == [3]
    removed, spans = choose_blocks(model, calibration, 3, "contiguous")
    assert len(spans) == 3 and removed == list(range(removed[0], removed[0] + 3))
    assert removed[0] == min(range(3), key=spans.__getitem__)


def test_dropping_renumbers_the_cache_and_shortens_per_layer_config_lists(tmp_path):
    model = load("hf:" + tiny_folder(str(tmp_path), "qwen2", layers=4)).model
    model.config.layer_types = ["full_attention", "sliding_attention", "full_attention", "sliding_attention"]
    drop_blocks(model, [0, 2])
    blocks = decoder_blocks(model)[1]
    assert [b.self_attn.layer_idx for b in blocks] == [0, 1]
    assert model.config.num_hidden_layers == 2 and model.config.layer_types == ["sliding_attention"] * 2


def test_impossible_requests_get_clear_errors_and_write_nothing(tmp_path, capsys):
    folder = tiny_folder(str(tmp_path), "llama", layers=3)
    with pytest.raises(ConfigError, match="cannot remove 3 of the model's 3 decoder blocks"):
        prune_depth("hf:" + folder, 3, out=tmp_path / "all", **SMALL)
    with pytest.raises(ConfigError, match="unknown block selection 'middle'"):
        prune_depth("hf:" + folder, 1, out=tmp_path / "mid", selection="middle", **SMALL)
    model = load("hf:" + folder).model
    with pytest.raises(ConfigError, match="some, not all"):
        drop_blocks(model, [0, 7])
    model.config.num_hidden_layers = 9
    with pytest.raises(ConfigError, match="expected one list of 9 decoder blocks"):
        decoder_blocks(model)
    assert not (tmp_path / "all").exists() and not (tmp_path / "mid").exists()
    assert main(["drop-blocks", "--model", "hf:" + folder, "--blocks", "1", "--out", str(tmp_path / "d1"),
                 "--seqlen", "32", "--held-out-tokens", "512", "--calibration-batches", "2", "--quiet"]) == 0
    assert "removed decoder blocks [" in capsys.readouterr().out
    assert load("hf:" + str(tmp_path / "d1")).model.config.num_hidden_layers == 2


def _kl_to(teacher, student, ids) -> float:
    with torch.no_grad():
        t = torch.log_softmax(teacher(input_ids=ids).logits, -1)
        s = torch.log_softmax(student(input_ids=ids).logits, -1)
    return float(torch.nn.functional.kl_div(s, t, log_target=True, reduction="sum") / ids.numel())


def test_distillation_from_the_dense_model_brings_a_block_pruned_student_closer_to_it(tmp_path, capsys):
    dense = tiny_folder(str(tmp_path), "llama", layers=4)
    pruned = prune_depth("hf:" + dense, 2, out=tmp_path / "d2", **SMALL).path
    assert main(["train", "--model", f"hf:{pruned}", "--teacher", f"hf:{dense}", "--epochs", "0.3",
                 "--lr", "0.003", "--seqlen", "32", "--held-out-tokens", "512", "--out", str(tmp_path / "kd"),
                 "--quiet"]) == 0
    assert f"distilled from hf:{dense}" in capsys.readouterr().out
    ids = torch.randint(0, 300, (2, 24), generator=torch.Generator().manual_seed(1))
    teacher = load("hf:" + dense).model
    before = _kl_to(teacher, load(f"hf:{pruned}").model, ids)
    after = _kl_to(teacher, load(f"hf:{tmp_path / 'kd'}").model, ids)
    assert after < 0.8 * before, (before, after)
    record = json.loads((tmp_path / "kd" / "prunekit.json").read_text())
    assert record["training"]["teacher"] == f"hf:{dense}" and record["training"]["distill"]["alpha"] == 1.0


def test_a_teacher_with_another_tokenizer_is_refused_before_training(tmp_path):
    from prunekit.hf import train_pretrained

    student = tiny_folder(str(tmp_path), "llama")
    other = load("hf:" + tiny_folder(str(tmp_path / "other"), "qwen2"))
    other.tokenizer.add_tokens(["<extra-token>"])
    other.tokenizer.save_pretrained(tmp_path / "other" / "tiny-qwen2")
    with pytest.raises(ConfigError, match="does not share the model's tokenizer"):
        train_pretrained("hf:" + student, out=tmp_path / "kd", teacher=f"hf:{tmp_path / 'other' / 'tiny-qwen2'}",
                         seqlen=32, held_out=512, progress=False)
    assert not (tmp_path / "kd").exists()
