"""Any data and user code: DataLoaders, Datasets and dict batches everywhere; models and datasets named as
FILE.py:FUNCTION on the command line, recorded in checkpoints but never imported from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import prunekit
from prunekit.cli import main
from prunekit.errors import CheckpointError, ConfigError
from prunekit.study import read_results
from prunekit.training import TrainConfig, evaluate, train

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def digits():
    data = prunekit.load_dataset("digits")
    return data.split("train"), data.split("test")


def test_a_dataloader_trains_like_in_memory_tensors():
    (x, y), (xt, yt) = digits()
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    model = prunekit.get_model("mlp", seed=0, hidden=[64], in_features=64)
    history = train(model, loader, TrainConfig(epochs=8, batch_size=64), progress=False)
    assert history[-1]["train_accuracy"] > 0.9
    assert evaluate(model, DataLoader(TensorDataset(xt, yt), batch_size=100))["accuracy"] > 0.85
    assert evaluate(model, xt, yt)["accuracy"] == evaluate(model, (xt, yt))["accuracy"]


class DictDigits(Dataset):
    """Hugging Face style samples: dicts with 'pixels' and 'labels'."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"pixels": self.x[i], "labels": self.y[i]}


class DictModel(nn.Module):
    """Returns an object with .loss and .logits, like a Hugging Face model given labels."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, pixels, labels=None):
        logits = self.body(pixels)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return type("Output", (), {"loss": loss, "logits": logits})()


def test_a_dataset_of_dicts_uses_the_models_own_loss_and_is_deterministic():
    (x, y), _ = digits()
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = DictModel()
        history = train(model, DictDigits(x, y), TrainConfig(epochs=3, batch_size=32, lr=0.05), progress=False)
        runs.append((history[-1]["loss"], model.body[1].weight.detach().clone()))
    assert runs[0][0] < 1.0 and runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])


def test_a_non_classifier_with_its_own_loss_needs_no_labels():
    x = torch.randn(64, 8)
    model = nn.Linear(8, 8)
    history = train(model, DataLoader(TensorDataset(x), batch_size=16), TrainConfig(epochs=2, lr=0.01),
                    loss_fn=lambda out, batch: (out - batch.args[0]).pow(2).mean(), progress=False)
    assert history[1]["loss"] < history[0]["loss"] and "train_accuracy" not in history[0]
    with pytest.raises(ConfigError, match="has no labels for the classifier loss"):
        train(model, DataLoader(TensorDataset(x), batch_size=16), TrainConfig(epochs=1), progress=False)


def test_devices_and_precisions_are_checked():
    from prunekit.training import resolve_device

    assert resolve_device("cpu") == torch.device("cpu") and resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="device 'cuda' is not available.*use --device cpu"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="fp16 autocast needs a GPU"):
        train(nn.Linear(4, 2), (torch.randn(8, 4), torch.zeros(8, dtype=torch.long)),
              TrainConfig(epochs=1, precision="fp16"), device="cpu", progress=False)
    history = train(nn.Linear(4, 2), (torch.randn(8, 4), torch.zeros(8, dtype=torch.long)),
                    TrainConfig(epochs=1, precision="bf16", batch_size=4), device="cpu", progress=False)
    assert len(history) == 1


def test_cli_rejects_an_unknown_device_before_reading_any_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PRUNEKIT_DATA", str(tmp_path / "no-such-folder"))
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--device", "tpu", "--out", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "argument --device: unknown device 'tpu'" in error and "no-such-folder" not in error
    assert not (tmp_path / "run").exists()


def test_user_model_and_dataset_from_the_command_line(tmp_path, capsys):
    model_ref, data_ref = f"{EXAMPLES}/models.py:small_resnet", f"{EXAMPLES}/data.py:digits_loaders"
    out = tmp_path / "mine"
    assert main(["train", "--model", model_ref, "--model-arg", "width=8", "--dataset", data_ref, "--epochs", "1",
                 "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == {"name": None, "args": {"width": 8}, "source": model_ref}
    assert config["dataset"] == data_ref and config["input_shape"] == [1, 8, 8]
    with pytest.raises(CheckpointError, match=r"user code .*models.py:small_resnet as its model; .* pass it again"):
        prunekit.load_checkpoint(out)
    assert main(["info", str(out)]) == 2
    assert "pass it again to use it (--model" in capsys.readouterr().err
    assert main(["info", str(out), "--model", model_ref]) == 0
    code = main(["prune", "--checkpoint", str(out), "--model", model_ref, "--dataset", data_ref, "--method", "unit",
                 "--sparsity", "50", "--out", str(tmp_path / "u50"), "--quiet"])
    assert code == 0 and "test accuracy" in capsys.readouterr().out
    pruned = prunekit.load_checkpoint(tmp_path / "u50", model_source=model_ref)  # the source is kept
    alive = {n: pruned.mask[f"{n}.weight"].flatten(1).any(1) for n in ("stem.0", "stage1.conv2")}
    assert torch.equal(alive["stem.0"], alive["stage1.conv2"]) and int(alive["stem.0"].sum()) == 4  # coupled
    assert main(["compact", "--checkpoint", str(tmp_path / "u50"), "--model", model_ref,
                 "--out", str(tmp_path / "u50-compact")]) == 0
    assert "parameters 5,122 -> 1,382" in capsys.readouterr().out  # every pruned unit removed
    small = tmp_path / "u50-compact"  # a checkpoint: the model's source and the plan replayed on it
    assert main(["info", str(small)]) == 2 and "pass it again" in capsys.readouterr().err
    compacted = prunekit.load_checkpoint(small, model_source=model_ref)
    assert sum(p.numel() for p in compacted.model.parameters()) == 1382
    x = torch.randn(3, 1, 8, 8)
    assert torch.allclose(compacted.model(x), pruned.model.eval()(x), atol=1e-5)
    assert main(["prune", "--checkpoint", str(small), "--model", model_ref, "--dataset", data_ref, "--method",
                 "weight", "--sparsity", "50", "--out", str(tmp_path / "small-w50"), "--quiet"]) == 0
    assert main(["bench", "latency", "--checkpoint", str(tmp_path / "small-w50"), "--model", model_ref,
                 "--batch-sizes", "1", "--repeats", "2"]) == 0
    assert main(["prune", "--checkpoint", str(out), "--model", model_ref, "--sparsity", "50",
                 "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "as its dataset; prunekit never runs code named in a checkpoint" in capsys.readouterr().err


def test_sweep_of_a_user_model_prunes_whole_coupled_units(tmp_path):
    model_ref, data_ref = f"{EXAMPLES}/models.py:small_resnet", f"{EXAMPLES}/data.py:digits_loaders"
    out = tmp_path / "sweep"
    assert main(["sweep", "--model", model_ref, "--model-arg", "width=8", "--dataset", data_ref, "--methods", "unit",
                 "--sparsities", "0,50", "--schedules", "oneshot", "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    points = {p["sparsity_target"]: p for p in read_results(out)}
    assert points[50.0]["sparsity_actual"] == pytest.approx(50.0)  # units of the pruned layers; the head is whole
    assert points[50.0]["params_nonzero"] < 0.5 * points[0.0]["params_nonzero"]  # consumers' inputs go too


def test_a_crafted_checkpoint_never_runs_code(tmp_path):
    trap = tmp_path / "trap.py"
    trap.write_text("import pathlib\npathlib.Path(__file__).with_name('ran').write_text('!')\n"
                    "def build():\n    raise SystemExit('imported')\n")
    folder = prunekit.save_checkpoint(tmp_path / "ck", nn.Linear(2, 2), model_name=f"{trap}:build")
    config = json.loads((folder / "config.json").read_text())
    config["model"]["name"] = f"{trap}:build"  # even as a "registry name", a reference is not imported
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError):
        prunekit.load_checkpoint(folder)
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("reference, words", [
    ("examples/nope.py:build", "file examples/nope.py does not exist"),
    (f"{EXAMPLES}/models.py:nothing", "has no attribute 'nothing'"),
    (f"{EXAMPLES}/models.py:Block", "cannot be called with"),
    ("no_such_package.module:fn", "cannot import no_such_package.module"),
])
def test_bad_references_are_clear_errors(reference, words):
    with pytest.raises(ConfigError, match=words):
        prunekit.get_model(reference)


def test_a_dataset_function_returning_the_wrong_thing(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def data():\n    return 42\n")
    with pytest.raises(ConfigError, match=r"must return \(train, test\)"):
        prunekit.load_dataset(f"{bad}:data")
