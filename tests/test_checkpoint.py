import json
import pickle

import pytest
import torch

from prunekit.checkpoint import load_checkpoint, save_checkpoint
from prunekit.errors import CheckpointError
from prunekit.models import get_model


def test_round_trip_gives_identical_outputs_and_records_metadata(tmp_path):
    model = get_model("convnet", seed=3, channels=[4, 4, 8, 8])
    model.eval()
    x = torch.randn(5, 1, 28, 28)
    save_checkpoint(tmp_path / "ck", model, model_name="convnet", model_args={"channels": (4, 4, 8, 8)},
                    metrics={"test_accuracy": 0.5}, dataset="mnist", seed=3)
    ckpt = load_checkpoint(tmp_path / "ck")
    assert torch.equal(ckpt.model(x), model(x))
    assert ckpt.metrics == {"test_accuracy": 0.5}
    config = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert config["model"] == {"name": "convnet", "args": {"channels": [4, 4, 8, 8]}}
    assert config["seed"] == 3 and config["dataset"] == "mnist"
    assert config["versions"]["torch"] == torch.__version__
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["config.json", "manifest.json", "metrics.json",
                                                                   "model.safetensors"]


def test_user_model_loads_into_a_given_module(tmp_path):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    save_checkpoint(tmp_path, model, model_name=None)
    with pytest.raises(CheckpointError, match="user model"):
        load_checkpoint(tmp_path)
    other = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    ckpt = load_checkpoint(tmp_path, model=other)
    assert torch.equal(ckpt.model[1].weight, model[1].weight)


def test_checkpoint_that_does_not_fit_names_the_tensors(tmp_path):
    save_checkpoint(tmp_path, get_model("mlp"), model_name="mlp")
    with pytest.raises(CheckpointError, match=r"fc1.weight: checkpoint has shape \[1000, 784\], model expects \[300, 784\]"):
        load_checkpoint(tmp_path, model=get_model("lenet300"))


def test_pickle_masquerading_as_safetensors_is_refused(tmp_path):
    save_checkpoint(tmp_path, get_model("lenet300"), model_name="lenet300")
    (tmp_path / "model.safetensors").write_bytes(pickle.dumps({"fc1.weight": torch.zeros(3)}))
    with pytest.raises(CheckpointError, match="model.safetensors is not a readable weights file"):
        load_checkpoint(tmp_path)


def test_missing_folder_and_bad_config_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere")
    save_checkpoint(tmp_path, get_model("lenet300"), model_name="lenet300")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json is not valid JSON"):
        load_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"format_version": 1, "model": {"name": "alexnet"}}))
    with pytest.raises(CheckpointError, match="unknown model 'alexnet'"):
        load_checkpoint(tmp_path)
