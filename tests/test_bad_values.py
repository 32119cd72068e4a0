"""Bad values get a prunekit error naming the value (or file) and what is expected, not a raw traceback or a
silent odd result: user models and data, non-finite losses and scores, CLI numbers, example inputs, and the
numbers, dtype names and layer names read from plan, sparse and architecture files."""

from __future__ import annotations

import json
import re

import pytest
import safetensors
import safetensors.numpy
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import prunekit
from prunekit.batches import make_inputs
from prunekit.cli import main
from prunekit.compact import compact
from prunekit.compact.plan import Plan, TensorPlan, apply_plan
from prunekit.deploy.sparse_file import export_sparse, load_sparse
from prunekit.errors import CheckpointError, ConfigError, DataError, TrainingError
from prunekit.storage import read_json
from prunekit.training import TrainConfig, train


def small_mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


@pytest.fixture
def user_code(tmp_path):
    """A user file with a model builder and datasets good and bad; returns ``name -> "FILE.py:name"``."""
    path = tmp_path / "mine.py"
    path.write_text(
        "import torch\nfrom torch import nn\nfrom torch.utils.data import DataLoader, TensorDataset\n"
        "def no_parameters():\n    return nn.Sequential(nn.Flatten(), nn.ReLU())\n"
        "def mlp():\n    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))\n"
        "def split(y, x=None):\n    return (torch.randn(len(y), 4) if x is None else x), y\n"
        "def float_labels():\n    return split(torch.rand(32)), split(torch.rand(8))\n"
        "def negative_labels():\n    return split(torch.arange(32) % 3 - 1), split(torch.arange(8) % 3)\n"
        "def unseen_test_labels():\n    return split(torch.arange(32) % 3), split(torch.arange(8))\n"
        "def nan_inputs():\n    x = torch.randn(32, 4); x[5, 2] = float('nan')\n"
        "    return split(torch.arange(32) % 3, x), split(torch.arange(8) % 3)\n"
        "def inf_in_a_loader():\n    x = torch.randn(32, 4); x[1, 0] = float('inf')\n"
        "    load = lambda: DataLoader(TensorDataset(x, torch.arange(32) % 3), batch_size=8)\n"
        "    return load(), load()\n")
    return lambda name: f"{path}:{name}"


def test_a_user_model_without_parameters_is_refused(user_code, tmp_path, capsys):
    reference = user_code("no_parameters")
    with pytest.raises(ConfigError, match=rf"{re.escape(reference)} returned a Sequential with no parameters: "
                                          r"there is nothing to train or prune"):
        prunekit.get_model(reference)
    with pytest.raises(ConfigError, match=r"the model \(Flatten\) has no trainable parameters"):
        train(nn.Flatten(), (torch.randn(8, 4), torch.zeros(8, dtype=torch.long)), TrainConfig(epochs=1),
              progress=False)
    assert main(["train", "--model", reference, "--dataset", "digits", "--epochs", "1", "--quiet",
                 "--out", str(tmp_path / "run")]) == 2
    assert "with no parameters: there is nothing to train or prune" in capsys.readouterr().err


@pytest.mark.parametrize("dataset, words", [
    ("float_labels", r"the train split has float32 labels such as \[0\.\d+, .*labels must be class indices, an "
                     r"int64 tensor"),
    ("negative_labels", r"the train split has 11 negative label\(s\) such as \[-1\]; labels must be class indices"),
    ("unseen_test_labels", r"test labels go up to 7 but train labels only to 2"),
], ids=["float", "negative", "unseen"])
def test_user_labels_must_be_class_indices_the_model_can_output(user_code, dataset, words):
    reference = user_code(dataset)
    with pytest.raises(DataError, match=rf"{re.escape(reference)}: {words}"):
        prunekit.load_dataset(reference)


@pytest.mark.parametrize("dataset, words", [
    ("nan_inputs", r"the train split holds 1 NaN or infinite input value\(s\) \(the first in sample 5\)"),
    ("inf_in_a_loader", r"the first train batch holds 1 NaN or infinite input value\(s\) \(the first in sample 1\)"),
], ids=["nan", "inf"])
def test_user_inputs_must_be_finite(user_code, tmp_path, capsys, dataset, words):
    reference = user_code(dataset)
    with pytest.raises(DataError, match=rf"{re.escape(reference)}: {words}"):
        prunekit.load_dataset(reference)
    assert main(["train", "--model", user_code("mlp"), "--dataset", reference, "--epochs", "1", "--quiet",
                 "--device", "cpu", "--out", str(tmp_path / "run")]) == 2
    assert "NaN or infinite input value" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_training_stops_at_a_non_finite_loss_and_keeps_finite_weights():
    x, y = torch.randn(32, 4), torch.arange(32) % 3
    x[20] = float("nan")  # the third batch of 8, beyond what any first-batch check sees
    model = small_mlp()
    with pytest.raises(TrainingError, match=r"training diverged during train: the loss is nan at epoch 1, step 3 "
                                            r"of 8; the weights are left as they were before that step"):
        train(model, DataLoader(TensorDataset(x, y), batch_size=8), TrainConfig(epochs=2, batch_size=8),
              progress=False)
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("kwargs, name", [
    ({"method": "weight"}, "'0.weight'"),
    ({"method": "weight", "scope": "global"}, "'0.weight'"),
    ({"method": "weight", "pattern": "2:4"}, "'0.weight'"),
    ({"method": "unit"}, "'0'"),
    ({"method": "unit", "example_inputs": torch.randn(2, 4)}, "'0'"),
], ids=["weight", "global", "2:4", "unit", "traced"])
def test_a_nan_layer_is_named_instead_of_left_unpruned(kwargs, name):
    model = small_mlp()
    with torch.no_grad():
        model[0].weight.fill_(float("nan"))
    with pytest.raises(ConfigError, match=rf"cannot rank NaN or infinite pruning scores in {name} \(\d+ of \d+ "
                                          r"entries\)"):
        prunekit.prune_model(model, sparsity=None if "pattern" in kwargs else 50.0, **kwargs)


@pytest.mark.parametrize("argv, words", [
    (["prune", "--latency-batch", "-5"], "argument --latency-batch: expected a positive integer, got '-5'"),
    (["prune", "--calibration-batches", "0"], "argument --calibration-batches: expected a positive integer, got '0'"),
    (["prune", "--align-channels", "0"], "argument --align-channels: expected a positive integer"),
    (["prune", "--target-latency", "nan"], "argument --target-latency: expected a positive number, got 'nan'"),
    (["prune", "--bn-batches", "-1"], "argument --bn-batches: expected a non-negative integer, got '-1'"),
    (["sensitivity", "--latency-batch", "0"], "argument --latency-batch: expected a positive integer"),
    (["sensitivity", "--validation-samples", "-100"], "argument --validation-samples: expected a positive integer"),
    (["sensitivity", "--target", "150"], "argument --target: expected a percentage in [0, 100)"),
    (["bench", "latency", "--repeats", "-1"], "argument --repeats: expected a positive integer, got '-1'"),
    (["bench", "latency", "--threads", "0"], "argument --threads: expected a positive integer"),
    (["bench", "train", "--epochs", "0"], "argument --epochs: expected a positive integer"),
    (["bench", "train", "--batch-size", "2.5"], "argument --batch-size: expected a positive integer, got '2.5'"),
    (["sweep", "--workers", "0"], "argument --workers: expected a positive integer, got '0'"),
    (["sweep", "--cpus-per-job", "-2"], "argument --cpus-per-job: expected a positive integer"),
    (["sweep", "--gpus-per-job", "-0.5"], "argument --gpus-per-job: expected a non-negative number, got '-0.5'"),
    (["sweep", "--gpus-per-job", "inf"], "argument --gpus-per-job: expected a non-negative number, got 'inf'"),
])
def test_cli_numbers_out_of_range_are_refused_naming_the_option(argv, words, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert words in capsys.readouterr().err


def test_empty_example_inputs_say_what_is_expected():
    for empty in [(), {}, []]:
        with pytest.raises(ConfigError, match="example_inputs is empty: pass one batch the model accepts"):
            prunekit.prune_model(small_mlp(), "unit", 50.0, example_inputs=empty)
    no_samples = r"example_inputs hold a tensor of shape \(0, 4\), a batch of no samples: pass one batch of at least"
    with pytest.raises(ConfigError, match=no_samples):
        prunekit.prune_model(small_mlp(), "unit", 50.0, example_inputs=torch.zeros(0, 4))
    with pytest.raises(ConfigError, match=no_samples):
        make_inputs(None, (torch.zeros(0, 4),))


@pytest.fixture
def plan_file(tmp_path):
    model, x = small_mlp(), torch.randn(3, 4)
    folder = compact(model, prunekit.prune_model(model, "unit", 50.0, example_inputs=x), example_inputs=x).save(
        tmp_path / "small")
    return folder / "plan.json"


@pytest.mark.parametrize("field, value, words", [
    ("shape", float("inf"), "shape[1] must be a non-negative integer, got inf"),
    ("shape", float("nan"), "shape[1] must be a non-negative integer, got nan"),
    ("shape", -4, "shape[1] must be a non-negative integer, got -4"),
    ("shape", 2.5, "shape[1] must be a non-negative integer, got 2.5"),
    ("keep", float("inf"), "a kept index of axis 0 must be a non-negative integer, got inf"),
    ("keep", 1.5, "a kept index of axis 0 must be a non-negative integer, got 1.5"),
])
def test_plan_numbers_must_be_non_negative_integers(plan_file, field, value, words):
    data = read_json(plan_file)
    entry = data["tensors"]["0.weight"]
    if field == "shape":
        entry["shape"][1] = value
    else:
        entry["keep"]["0"][1] = value
    plan_file.write_text(json.dumps(data))  # Infinity and NaN are what Python's json writes for them
    expected = rf"{re.escape(str(plan_file))} is not a valid compaction plan \(tensor '0.weight': {re.escape(words)}"
    with pytest.raises(CheckpointError, match=expected):
        Plan.from_json(read_json(plan_file), plan_file)


@pytest.mark.parametrize("path, attribute", [("0", "forward"), ("0", "_version"), ("nope", "in_features")])
def test_a_plan_sets_only_integer_attributes_the_model_has(path, attribute):
    model = small_mlp()
    plan = Plan({"0.weight": TensorPlan((8, 4), {0: [0, 1]})}, {path: {attribute: 2}})
    with pytest.raises(CheckpointError, match=rf"the plan sets {path}\.{attribute}, which is not an integer attribute "
                                              r"of the model \(Sequential\)"):
        apply_plan(model, plan)
    assert model[0].weight.shape == (8, 4)  # nothing changed


@pytest.mark.parametrize("dtype", ["load", "Tensor", "float", "__builtins__", 3])
def test_a_sparse_file_names_only_known_dtypes(tmp_path, dtype):
    path = tmp_path / "m.sparse.safetensors"
    export_sparse(small_mlp(), path)
    with safetensors.safe_open(str(path), "np") as f:
        meta, arrays = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    tensors = json.loads(meta["tensors"])
    tensors["0.weight"]["dtype"] = dtype
    safetensors.numpy.save_file(arrays, str(path), metadata={**meta, "tensors": json.dumps(tensors)})
    expected = rf"{re.escape(str(path))}: tensor '0.weight' has unknown dtype {dtype!r}; expected one of float64, "
    with pytest.raises(CheckpointError, match=expected + "float32, float16, bfloat16, "):
        load_sparse(path)


@pytest.mark.filterwarnings("ignore:.*differs from the file its save wrote")  # the file is edited on purpose
@pytest.mark.parametrize("name, problem", [
    ("forward", "is an attribute of nn.Sequential"),
    ("__init__", "is an attribute of nn.Sequential"),
    ("training", "is an attribute of nn.Sequential"),
    ("_modules", "is an attribute of nn.Sequential"),
    ("append", "is an attribute of nn.Sequential"),
    ("a.b", "holds a '.'"),
    ("", "is empty"),
])
def test_architecture_layer_names_must_be_possible_module_names(tmp_path, name, problem):
    folder = prunekit.save_checkpoint(tmp_path / "ck", small_mlp(), model_name=None, architecture=True)
    path = folder / "architecture.json"
    spec = read_json(path)
    spec["layers"][0]["name"] = name
    path.write_text(json.dumps(spec))
    expected = rf"{re.escape(str(path))}: architecture layer name {re.escape(repr(name))} {re.escape(problem)}; "
    with pytest.raises(CheckpointError, match=expected + r"expected a non-empty name without '\.', used once, that "
                                                         r"is not an nn\.Sequential attribute"):
        prunekit.load_checkpoint(folder)
