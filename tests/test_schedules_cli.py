"""``prunekit prune --schedule``: a schedule from the command line, with its recipe options."""

import json

import pytest

from prunekit.checkpoint import load_checkpoint
from prunekit.cli import main


@pytest.fixture
def dense(baseline):
    return baseline


@pytest.mark.parametrize("schedule,rounds", [("iterative", 2), ("lottery", 2), ("gradual", 1)])
def test_prune_with_a_schedule_saves_the_recovered_model_and_its_rounds(dense, mnist_dir, tmp_path, capsys,
                                                                        schedule, rounds):
    out = tmp_path / schedule
    code = main(["prune", "--checkpoint", str(dense), "--method", "weight", "--sparsity", "90", "--scope", "global",
                 "--schedule", schedule, "--out", str(out), "--data-dir", str(mnist_dir), "--quiet",
                 "--iterative-epochs", "0.05", "--lottery-epochs", "0.05", "--gradual-epochs", "0.1",
                 "--round-fraction", "0.8", "--distill", "--lottery-lr-schedule", "cosine", "--finetune-momentum", "0.5"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert [r["round"] for r in metrics["rounds"]] == list(range(1, rounds + 1))
    assert metrics["rounds"][-1]["sparsity"] == 90.0
    assert metrics["train_epochs"] == pytest.approx(0.1 if schedule == "gradual" else 0.05 * rounds)
    assert config["pruning"]["schedule"] == schedule
    assert config["pruning"]["recovery"]["distill"]["temperature"] == 4.0
    assert config["pruning"]["recovery"]["lottery"]["lr_schedule"] == "cosine"
    assert config["pruning"]["recovery"]["finetune"]["momentum"] == 0.5
    ckpt = load_checkpoint(out)
    assert ckpt.mask.sparsity() == pytest.approx(90.0, abs=0.01)
    assert metrics["test_accuracy"] > 0.5
    assert f"(global, {schedule}, " in capsys.readouterr().out


def test_every_recipe_field_is_an_option_and_bad_values_are_refused(dense, tmp_path, capsys):
    code = main(["prune", "--checkpoint", str(dense), "--sparsity", "50", "--schedule", "finetune",
                 "--finetune-momentum", "1.5", "--out", str(tmp_path / "x"), "--quiet"])
    assert code == 2 and "momentum must be a number in [0, 1)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["prune", "--checkpoint", str(dense), "--sparsity", "50", "--gradual-lr", "fast", "--out", "x"])
    assert "invalid float value: 'fast'" in capsys.readouterr().err


def test_unknown_schedule_fails_before_any_work(dense, tmp_path, capsys):
    code = main(["prune", "--checkpoint", str(dense), "--sparsity", "50", "--schedule", "cyclic",
                 "--out", str(tmp_path / "x"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown schedule 'cyclic'" in err and "iterative" in err
    assert not (tmp_path / "x").exists()
