"""Pretrained Hugging Face language models in and out (tiny random models of real architectures, no hub)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import safetensors.torch
import torch

from prunekit.cli import main
from prunekit.data.text import token_splits
from prunekit.errors import ConfigError
from prunekit.hf import held_out_perplexity, load, prune_pretrained
from prunekit.hf.tiny import tiny_folder
from prunekit.prune import PruneSpec

pytest.importorskip("transformers")

CASES = [  # every architecture with default configs (use_cache on), each pruned one way
    ("llama", PruneSpec("weight"), 50.0),
    ("qwen2", PruneSpec("weight", criterion="wanda", calibration_batches=2), 50.0),
    ("mistral", PruneSpec("weight", criterion="sparsegpt", pattern="2:4", calibration_batches=2), None),
    ("phi3", PruneSpec("weight", criterion="wanda", pattern="2:4", calibration_batches=2), None),
    ("gemma", PruneSpec("weight", criterion="sparsegpt", calibration_batches=2), 60.0),
    ("mixtral", PruneSpec("unit"), 50.0),
    ("gpt2", PruneSpec("unit", layers=("*mlp*",)), 50.0),  # GPT-2's heads are sized by n_embd: no standard config
]
SMALL = dict(seqlen=64, held_out=1024, progress=False)

FRESH = """
import json, sys, torch, safetensors.torch
from transformers import AutoModelForCausalLM
for folder, expected in json.loads(sys.argv[1]):
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()
    want = safetensors.torch.load_file(expected)
    with torch.no_grad():
        got = model(input_ids=want["ids"]).logits
    assert torch.allclose(got, want["logits"], atol=1e-5), (folder, float((got - want["logits"]).abs().max()))
assert not any(name.startswith("prunekit") for name in sys.modules)
print("all equal")
"""


def test_every_architecture_prunes_into_a_folder_stock_transformers_loads(tmp_path):
    ids = torch.randint(0, 300, (1, 24))
    checks = []
    for arch, spec, target in CASES:
        folder = tiny_folder(str(tmp_path), arch)
        result = prune_pretrained("hf:" + folder, spec, target, out=tmp_path / f"{arch}-out", **SMALL)
        assert result.sparsity == pytest.approx(target if target is not None else 50.0, abs=0.5), arch
        assert math.isfinite(result.perplexity) and result.perplexity_dense > 1
        again = load("hf:" + str(result.path))
        if result.config_changes is None:  # weight pruning: pruned entries are zeros in the saved weights
            assert all(not again.model.get_parameter(n)[~m].any() for n, m in result.mask.items()), arch
        else:  # unit pruning: the smaller model
            assert sum(p.numel() for p in again.model.parameters()) == result.params < result.params_dense, arch
        with torch.no_grad():
            logits = again.model(input_ids=ids).logits
        safetensors.torch.save_file({"ids": ids, "logits": logits.contiguous()}, str(tmp_path / f"{arch}.expected"))
        record = json.loads((result.path / "prunekit.json").read_text())
        assert record["metrics"]["perplexity"] == pytest.approx(result.perplexity)
        assert record["source_digest"] == load("hf:" + folder).digest
        checks.append((str(result.path), str(tmp_path / f"{arch}.expected")))
    done = subprocess.run([sys.executable, "-c", FRESH, json.dumps(checks)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and "all equal" in done.stdout, done.stderr[-2000:]


def test_perplexity_is_the_windowed_mean_and_calibration_never_overlaps_the_held_out_text(tmp_path):
    folder = tiny_folder(str(tmp_path), "llama")
    pretrained = load("hf:" + folder)
    splits = token_splits("text:pydoc", pretrained.tokenizer, held_out=300, window=64)
    value, tokens = held_out_perplexity("hf:" + folder, seqlen=64, held_out=300, progress=False)
    nll, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, 300 - 64, 64):  # windows of 64 predicted tokens: 0-64, 64-128, ...
            chunk = splits.held_out[start:start + 65]
            logits = pretrained.model(input_ids=chunk[:-1][None]).logits[0]
            nll += float(torch.nn.functional.log_softmax(logits, -1).gather(1, chunk[1:, None]).sum())
            count += 64
    assert tokens == 300 and value == pytest.approx(math.exp(-nll / count), rel=1e-5)
    calibration = splits.calibration(4, 64)
    whole = torch.cat([splits.held_out, splits.rest])
    assert torch.equal(whole, torch.tensor(pretrained.tokenizer(__import__("prunekit.data.text", fromlist=["x"])
                                                               .read_text("text:pydoc"))["input_ids"]))
    for i, batch in enumerate(calibration):  # each sequence lies after the held-out tokens
        assert torch.equal(batch["input_ids"][0], whole[300 + 64 * i:300 + 64 * (i + 1)])
    with pytest.raises(ConfigError, match="too short|need"):
        splits.calibration(10**6, 64)


def test_the_command_line_prunes_and_evaluates_a_folder(tmp_path, capsys):
    folder = tiny_folder(str(tmp_path), "qwen2")
    out = tmp_path / "w50"
    small = ["--seqlen", "64", "--held-out-tokens", "1024", "--quiet"]
    assert main(["prune", "--model", f"hf:{folder}", "--sparsity", "50", "--criterion", "wanda",
                 "--calibration-batches", "2", "--out", str(out), *small]) == 0
    assert "held-out perplexity" in capsys.readouterr().out
    recorded = json.loads((out / "prunekit.json").read_text())["metrics"]["perplexity"]
    assert main(["eval", "--model", f"hf:{out}", "--json", str(tmp_path / "ppl.json"), *small]) == 0
    assert json.loads((tmp_path / "ppl.json").read_text())["perplexity"] == pytest.approx(recorded, rel=1e-6)
    assert main(["eval", "--model", f"hf:{folder}", "--mask", str(out / "masks.safetensors"), *small]) == 0
    assert f"perplexity {recorded:.3f}" in capsys.readouterr().out
    tuned = tmp_path / "w50-ft"  # the same pruning, then fine-tuned on the text after the held-out part
    assert main(["prune", "--model", f"hf:{folder}", "--sparsity", "50", "--criterion", "wanda",
                 "--calibration-batches", "2", "--schedule", "finetune", "--finetune-epochs", "0.2",
                 "--out", str(tuned), *small]) == 0
    assert "finetune on" in capsys.readouterr().out
    record = json.loads((tuned / "prunekit.json").read_text())
    assert record["metrics"]["perplexity"] < recorded and record["metrics"]["train_tokens"] > 0
    assert record["pruning"]["recovery"]["finetune"]["optimizer"] == "adam"  # the LM recipe's
    again = load(f"hf:{tuned}").model
    masks = safetensors.torch.load_file(str(tuned / "masks.safetensors"))
    assert all(not again.get_parameter(n)[~m].any() for n, m in masks.items())  # the mask held while training
    for option, message in ((["--schedule", "lottery"], "no initialisation"),
                            (["--schedule", "finetune", "--owl"], "OWL and per-layer plans")):
        assert main(["prune", "--model", f"hf:{folder}", "--sparsity", "50", *option,
                     "--out", str(tmp_path / "x"), *small]) == 2
        assert message in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_iterative_pruning_distils_from_the_dense_model(tmp_path):
    from prunekit.schedules import Recovery
    from prunekit.training import DistillConfig, TrainConfig

    folder = tiny_folder(str(tmp_path), "llama")
    small = dict(seqlen=32, held_out=512, progress=False)
    spec = PruneSpec("weight")
    oneshot = prune_pretrained("hf:" + folder, spec, 70.0, out=tmp_path / "o", **small)
    recovery = Recovery(iterative=TrainConfig(epochs=0.05, lr=1e-3), distill=DistillConfig())
    distilled = prune_pretrained("hf:" + folder, spec, 70.0, out=tmp_path / "d", schedule="iterative",
                                 recovery=recovery, **small)
    record = json.loads((distilled.path / "prunekit.json").read_text())["pruning"]["recovery"]
    assert record["distill"] == {"temperature": 1.0, "alpha": 1.0}  # the language-model defaults
    ids = torch.randint(0, 300, (4, 32), generator=torch.Generator().manual_seed(3))
    dense = load("hf:" + folder).model

    def kl_to_dense(path):
        with torch.no_grad():
            student = load("hf:" + str(path)).model(ids).logits.log_softmax(-1)
            teacher = dense(ids).logits.log_softmax(-1)
        return float((teacher.exp() * (teacher - student)).sum(-1).mean())

    assert distilled.train_tokens > 0 and abs(distilled.sparsity - 70.0) < 1
    assert kl_to_dense(distilled.path) < 0.8 * kl_to_dense(oneshot.path)


def test_bad_models_and_texts_get_clear_errors(tmp_path, capsys):
    folder = tiny_folder(str(tmp_path), "llama")
    cases = {}
    (tmp_path / "empty").mkdir()
    cases["empty"] = "no config.json"
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "config.json").write_text(json.dumps({"model_type": "llama", "auto_map": {"AutoModel": "x.Y"}}))
    cases["remote"] = "never runs code from a model folder"
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        (bare / name).write_bytes((tmp_path / "tiny-llama" / name).read_bytes())
    cases["bare"] = "no tokenizer"
    for name, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            load(f"hf:{tmp_path / name}")
    with pytest.raises(ConfigError, match="unknown dtype"):
        load(f"hf:{folder}", dtype="int3")
    tokenizer = load(f"hf:{folder}").tokenizer
    (tmp_path / "short.txt").write_text("a few words")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 ".encode("latin-1") * 100)
    (tmp_path / "rows.jsonl").write_text(json.dumps({"body": "text"}) + "\n")
    for reference, message in ((f"text:{tmp_path / 'short.txt'}", "too short"),
                               (f"text:{tmp_path / 'latin1.txt'}", "not UTF-8"),
                               (f"text:{tmp_path / 'rows.jsonl'}", "name the field"),
                               (f"text:{tmp_path / 'rows.jsonl'}:text", "no text field 'text'"),
                               (f"text:{tmp_path / 'missing.txt'}", "does not exist")):
        with pytest.raises(ConfigError, match=message):
            token_splits(reference, tokenizer, held_out=100, window=64)
    assert main(["prune", "--model", f"hf:{tmp_path / 'remote'}", "--sparsity", "50",
                 "--out", str(tmp_path / "o")]) == 2
    assert "remote code" in capsys.readouterr().err and not (tmp_path / "o").exists()


@pytest.mark.parametrize("criterion", ["wanda", "sparsegpt"])
def test_block_by_block_calibration_gives_the_masks_of_the_whole_model_path(tmp_path, monkeypatch, criterion):
    import prunekit.prune.calibration as calibration
    from prunekit.prune import prune_model

    folder = tiny_folder(str(tmp_path), "llama")
    pretrained = load("hf:" + folder)
    splits = token_splits("text:pydoc", pretrained.tokenizer, held_out=256, window=64)
    batches = splits.calibration(4, 64)
    stages = []
    real = calibration.block_stages
    monkeypatch.setattr(calibration, "block_stages", lambda *a: stages.append(real(*a)) or stages[-1])
    blockwise = prune_model(load("hf:" + folder).model, "weight", 50.0, criterion=criterion, calibration=batches,
                            calibration_batches=4)
    monkeypatch.setattr(calibration, "block_stages", lambda *a: None)  # the whole-model path
    whole = prune_model(load("hf:" + folder).model, "weight", 50.0, criterion=criterion, calibration=batches,
                        calibration_batches=4)
    assert stages and all(s is not None for s in stages) and set(blockwise) == set(whole) and len(whole) == 14  # 7 Linear layers in each of 2 blocks
    assert all(torch.equal(blockwise[k], whole[k]) for k in whole)


def test_an_owl_plan_keeps_the_average_and_prunes_outlier_blocks_less(tmp_path):
    from prunekit.plan import owl_plan

    folder = tiny_folder(str(tmp_path), "llama")
    model = load("hf:" + folder).model
    with torch.no_grad():
        for layer in ("q_proj", "k_proj", "v_proj", "o_proj"):  # a few large weights in block 1: outliers
            getattr(model.model.layers[1].self_attn, layer).weight.view(-1)[::37] *= 20
    splits = token_splits("text:pydoc", load("hf:" + folder).tokenizer, held_out=256, window=64)
    plan = owl_plan(model, 60.0, splits.calibration(4, 64), batches=4)
    assert set(plan) == {"model.layers.0.*", "model.layers.1.*"}
    assert plan["model.layers.1.*"] < plan["model.layers.0.*"] and sum(plan.values()) / 2 == pytest.approx(60.0)
    assert max(plan.values()) - min(plan.values()) == pytest.approx(16.0)  # spread over 2 x 8 points
    result = prune_pretrained("hf:" + folder, PruneSpec("weight", criterion="wanda", calibration_batches=4), 60.0,
                              out=tmp_path / "owl", owl=True, **SMALL)
    record = json.loads((result.path / "prunekit.json").read_text())["pruning"]
    assert len(record["owl_plan"]) == 2 and result.sparsity == pytest.approx(60.0, abs=0.5)
    with pytest.raises(ConfigError, match="OWL"):
        prune_pretrained("hf:" + folder, PruneSpec("unit"), 50.0, out=tmp_path / "no", owl=True, **SMALL)


def test_a_gguf_file_loads_as_its_folder_and_converts_into_one_stock_transformers_loads(tmp_path):
    pytest.importorskip("gguf")
    from prunekit.hf.tiny import tiny_gguf

    gguf_file = tiny_gguf(str(tmp_path))  # the tiny Llama of tiny_folder (same seed), in llama.cpp's layout
    direct, folder = load(f"hf:{gguf_file}"), load(f"hf:{tmp_path / 'tiny-llama'}")
    text = "def f(x):\n    return x"
    assert direct.tokenizer(text)["input_ids"] == folder.tokenizer(text)["input_ids"]
    ids = torch.randint(0, 300, (1, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(direct.model(input_ids=ids).logits, folder.model(input_ids=ids).logits, atol=1e-5)
    assert main(["convert", "--model", f"hf:{gguf_file}", "--out", str(tmp_path / "converted")]) == 0
    from transformers import AutoModelForCausalLM

    stock = AutoModelForCausalLM.from_pretrained(tmp_path / "converted", local_files_only=True).eval()
    with torch.no_grad():
        assert torch.allclose(stock(input_ids=ids).logits, folder.model(input_ids=ids).logits, atol=1e-5)


def test_gguf_files_transformers_cannot_read_get_errors_naming_them(tmp_path, capsys):
    gguf = pytest.importorskip("gguf")
    from prunekit.hf.tiny import tiny_gguf

    (tmp_path / "noise.gguf").write_bytes(bytes(range(256)) * 4)
    writer = gguf.GGUFWriter(str(tmp_path / "odd.gguf"), "nosucharch")
    writer.add_block_count(1)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    cases = {"noise.gguf": "magic bytes", "odd.gguf": "nosucharch",
             tiny_gguf(str(tmp_path), tensor_type="I8"): "I8"}  # a quantization gguf cannot dequantize
    for name, message in cases.items():
        with pytest.raises(ConfigError, match=message) as error:
            load(f"hf:{tmp_path / name}")
        assert str(tmp_path / name) in str(error.value) and "GGUF reader supports" in str(error.value)
    assert main(["convert", "--model", f"hf:{tmp_path / 'odd.gguf'}", "--out", str(tmp_path / "o")]) == 2
    assert "odd.gguf" in capsys.readouterr().err and not (tmp_path / "o").exists()
