"""Bad input gets a clear error that names the file or value, and loses nothing (issue: consolidation, part 5)."""

from __future__ import annotations

import json
import os
import time

import pytest
import safetensors.torch
import torch

from prunekit.checkpoint import load_checkpoint, save_checkpoint
from prunekit.cli import main
from prunekit.errors import CheckpointError
from prunekit.models import get_model
from prunekit.prune import Mask, prune_model


@pytest.fixture
def checkpoint(tmp_path):
    model = get_model("lenet300", seed=0)
    mask = prune_model(model, "weight", 50.0)
    return save_checkpoint(tmp_path / "ck", model, model_name="lenet300", mask=mask, dataset="mnist",
                           input_shape=[1, 28, 28])


def test_weights_of_the_wrong_dtype_are_refused_not_loaded_as_zeros(checkpoint):
    state = safetensors.torch.load_file(str(checkpoint / "model.safetensors"))
    state["fc1.weight"] = state["fc1.weight"].to(torch.int64)
    safetensors.torch.save_file(state, str(checkpoint / "model.safetensors"))
    with pytest.raises(CheckpointError, match="fc1.weight: checkpoint has dtype int64, model expects float32"):
        load_checkpoint(checkpoint)


def test_a_bool_mask_holding_other_bytes_is_corrupt(checkpoint):
    path = checkpoint / "masks.safetensors"
    data = bytearray(path.read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    data[header + 5] = 2  # a "bool" byte that is neither 0 nor 1
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="bytes other than 0 and 1"):
        Mask.load(path)


@pytest.mark.parametrize("mutate, words", [
    (lambda c: c.update(model="mlp"), "'model' must be dict"),
    (lambda c: c["model"].update(name=["mlp"]), "'name' must be str"),
    (lambda c: c["model"].update(args=[1000]), "'args' must be dict"),
    (lambda c: c["model"].update(name="mlp", args={"hidden": [10**7, 10**7]}), "more than this machine"),
    (lambda c: c["model"].update(name="mlp", args={"hidden": "wide"}), "argument hidden must be a list"),
    (lambda c: c.update(format_version="1"), "'format_version' must be int"),
    (lambda c: c["model"].update(name=None, architecture="../../etc/passwd"), "inside the checkpoint folder"),
    (lambda c: c.update(input_shape=[1, -28]), "input_shape must be a list of positive integers"),
])
def test_config_json_with_wrong_types_or_sizes_is_named(checkpoint, mutate, words):
    path = checkpoint / "config.json"
    config = json.loads(path.read_text())
    mutate(config)
    path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=words) as info:
        load_checkpoint(checkpoint)
    assert "config.json" in str(info.value)


def test_a_huge_architecture_is_refused_before_allocating(tmp_path):
    from torch import nn

    save_checkpoint(tmp_path / "c", nn.Sequential(nn.Linear(4, 2)), model_name=None, architecture=True)
    arch = json.loads((tmp_path / "c" / "architecture.json").read_text())
    arch["layers"][0]["args"].update(in_features=10**7, out_features=10**7)
    (tmp_path / "c" / "architecture.json").write_text(json.dumps(arch))
    with pytest.raises(CheckpointError, match="architecture.json: the architecture has 100,000,010,000,000"):
        load_checkpoint(tmp_path / "c")


def test_a_folder_or_an_unreadable_file_where_a_file_is_expected(checkpoint, monkeypatch):
    (checkpoint / "metrics.json").unlink()
    (checkpoint / "metrics.json").mkdir()
    with pytest.raises(CheckpointError, match="metrics.json is a folder"):
        load_checkpoint(checkpoint)
    os.rmdir(checkpoint / "metrics.json")
    target = checkpoint / "model.safetensors"
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(target) else real_access(p, mode))
    with pytest.raises(CheckpointError, match="model.safetensors exists but cannot be read"):
        load_checkpoint(checkpoint)


def test_train_refuses_a_bad_output_before_training(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    started = time.perf_counter()
    assert main(["train", "--out", str(tmp_path / "afile"), "--quiet"]) == 2
    assert "exists and is a file" in capsys.readouterr().err
    assert time.perf_counter() - started < 60  # no training happened (it would take minutes)


def test_prune_refuses_to_overwrite_its_input(baseline, capsys):
    before = {p.name: p.read_bytes() for p in baseline.iterdir()}
    assert main(["prune", "--checkpoint", str(baseline), "--sparsity", "50", "--out", str(baseline), "--quiet"]) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in baseline.iterdir()} == before


@pytest.mark.parametrize("argv, words", [
    (["--model-arg", "hidden=wide"], "argument hidden must be a list of integers"),
    (["--model-arg", "num_classes=5"], "the model outputs 5 classes but the labels go up to 9"),
    (["--weight-decay", "-1"], "weight_decay must be a number >= 0, got -1.0"),
    (["--model", "lenet5", "--epochs", "0.01", "--warmup-fraction", "1"], "warmup_fraction must be a number in [0, 1)"),
])
def test_train_settings_are_clear_errors(tmp_path, capsys, argv, words):
    code = main(["train", *argv, "--epochs", "0.01", "--out", str(tmp_path / "o"), "--quiet"])
    assert code == 2 and words in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_invalid_json_in_a_model_arg_is_not_taken_as_a_string(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--model-arg", "hidden=[300,100", "--out", str(tmp_path / "o")])
    assert "not valid JSON" in capsys.readouterr().err


def test_a_wrong_input_shape_and_a_missing_export_folder(checkpoint, tmp_path, capsys):
    assert main(["compact", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "c"),
                 "--input-shape", "3,32,32"]) == 2
    assert "does not run on inputs of shape [3, 32, 32]" in capsys.readouterr().err
    out = tmp_path / "new" / "folder" / "w.safetensors"
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "sparse", "--out", str(out)]) == 0
    assert out.is_file()


def test_a_failed_onnx_export_leaves_the_previous_file(checkpoint, tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnxruntime")
    import onnxruntime

    out = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "onnx", "--out", str(out)]) == 0
    good = out.read_bytes()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(onnxruntime, "InferenceSession", killed)
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "onnx", "--out", str(out)]) == 130
    assert out.read_bytes() == good and sorted(os.listdir(tmp_path)) == ["ck", "m.onnx"]
