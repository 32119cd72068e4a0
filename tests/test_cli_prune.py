import json

import pytest
import torch

from prunekit.checkpoint import load_checkpoint
from prunekit.cli import main


@pytest.fixture
def trained(baseline):
    return baseline


def test_prune_writes_a_masked_checkpoint_and_prints_the_report(trained, tmp_path, mnist_dir, capsys):
    out = tmp_path / "w90"
    code = main(["prune", "--checkpoint", str(trained), "--method", "weight", "--sparsity", "90",
                 "--out", str(out), "--data-dir", str(mnist_dir), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "fc1" in printed and "total" in printed and "test accuracy" in printed
    ckpt = load_checkpoint(out)
    assert ckpt.mask is not None
    assert (ckpt.model.fc1.weight == 0).float().mean().item() == pytest.approx(0.9, abs=1e-4)
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.5 < metrics["test_accuracy"] <= metrics["dense_test_accuracy"] + 0.01
    assert json.loads((out / "config.json").read_text())["pruning"]["method"] == "weight"


def test_unit_pruning_removes_rows_but_never_classifier_units(trained, tmp_path, mnist_dir, capsys):
    out = tmp_path / "u50"
    assert main(["prune", "--checkpoint", str(trained), "--method", "unit", "--sparsity", "50",
                 "--out", str(out), "--data-dir", str(mnist_dir), "--quiet"]) == 0
    model = load_checkpoint(out).model
    dead_rows = (model.fc1.weight.abs().sum(1) == 0).sum().item()
    assert dead_rows == 150 and (model.fc2.weight.abs().sum(1) == 0).sum().item() == 50
    assert torch.all(model.classifier.weight.abs().sum(1) > 0)
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "lenet300" in info and "150" in info and "method=unit" in info


@pytest.mark.parametrize("argv, message", [
    (["--method", "unit", "--sparsity", "100"], "sparsity must be a percentage in [0, 100)"),
    (["--method", "weight", "--sparsity", "-5"], "got -5.0"),
    (["--method", "unit", "--sparsity", "50", "--layers", "conv*"], "conv*"),
])
def test_prune_rejects_impossible_requests(trained, tmp_path, mnist_dir, capsys, argv, message):
    code = main(["prune", "--checkpoint", str(trained), *argv, "--out", str(tmp_path / "x"),
                 "--data-dir", str(mnist_dir), "--quiet"])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x" / "model.safetensors").exists()


def test_prune_of_a_missing_checkpoint_names_it(tmp_path, capsys):
    assert main(["prune", "--checkpoint", str(tmp_path / "nope"), "--sparsity", "50", "--out", str(tmp_path)]) == 2
    assert "nope does not exist" in capsys.readouterr().err
