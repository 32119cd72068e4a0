import argparse
import json

import pytest

from prunekit.cli import build_parser, main


def iter_parsers(parser, path=()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from iter_parsers(sub, path + (name,))


def test_every_option_of_every_command_has_help():
    missing = [
        (" ".join(path), action.dest)
        for path, parser in iter_parsers(build_parser())
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and not action.help
    ]
    assert missing == []


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["models", "--help"], ["bench", "train", "--help"]])
def test_help_exits_cleanly(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    assert "usage: prunekit" in capsys.readouterr().out


def test_train_writes_checkpoint_config_and_metrics(tmp_path, mnist_dir, capsys):
    out = tmp_path / "run"
    code = main(["train", "--model", "lenet300", "--epochs", "0.3", "--seed", "4", "--out", str(out),
                 "--data-dir", str(mnist_dir), "--quiet"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert 0.85 < metrics["test_accuracy"] <= 1.0
    assert metrics["train_seconds"] > 0
    assert config["model"]["name"] == "lenet300" and config["seed"] == 4 and config["train"]["epochs"] == 0.3
    assert (out / "model.safetensors").stat().st_size > 266_000 * 4
    assert "lenet300: test accuracy" in capsys.readouterr().out


def test_models_lists_every_model(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("mlp", "lenet300", "lenet5", "convnet"):
        assert f"\n{name} " in "\n" + out


def test_unknown_model_is_a_clear_error_not_a_traceback(tmp_path, mnist_dir, capsys):
    code = main(["train", "--model", "resnet18", "--out", str(tmp_path), "--data-dir", str(mnist_dir), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown model 'resnet18'" in err and "mlp" in err and "Traceback" not in err
    assert not (tmp_path / "model.safetensors").exists()


def test_bad_model_arg_syntax_is_rejected(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--model-arg", "hidden", "--out", "x"])
    assert "expected KEY=VALUE" in capsys.readouterr().err
