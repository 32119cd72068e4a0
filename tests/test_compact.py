"""Compaction: compact outputs == masked outputs, dead-unit rules, reports, JSON architecture, save/load."""

import json

import pytest
import torch
from torch import nn

from prunekit.compact.architecture import architecture_to_json, model_from_architecture
from prunekit.checkpoint import load_checkpoint, save_checkpoint
from prunekit.errors import CheckpointError, ConfigError
from prunekit.models import get_model
from prunekit.prune import Mask, prune_model, sparsity_report
from prunekit.compact import compact


def randomise_batchnorm(model, seed=0):
    """Non-trivial BN running stats and affine parameters (eval mode uses them)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g))
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.3)
    return model.eval()


def max_diff(a, b, x):
    with torch.inference_mode():
        return (a.eval()(x) - b.eval()(x)).abs().max().item()


def test_mlp_compact_equals_masked_on_the_mnist_test_set(mnist):
    x, _ = mnist.split("test")
    model = get_model("mlp", seed=0).eval()
    mask = prune_model(model, "unit", 75.0)
    result = compact(model, mask)
    assert max_diff(result.model, model, x) <= 1e-5
    shapes = [tuple(m.weight.shape) for m in result.model if isinstance(m, nn.Linear)]
    assert shapes == [(250, 784), (250, 250), (125, 250), (50, 125), (10, 50)]
    assert result.report.params_after == sum(a * b for a, b in shapes)


@pytest.mark.parametrize("name", ["lenet5", "convnet"])
def test_conv_models_compact_equals_masked(name, mnist_slice):
    (_, _), (x, _) = mnist_slice
    model = randomise_batchnorm(get_model(name, seed=1))
    mask = prune_model(model, "unit", 60.0)
    result = compact(model, mask)
    assert max_diff(result.model, model, x[:500]) <= 1e-5
    live = {r.name: r.live_units for r in sparsity_report(model, mask).rows}
    rows = {r.name: r for r in result.report.layers}
    for layer in live:
        if rows[layer].status != "output":
            assert rows[layer].kept == live[layer] and rows[layer].status == "compacted"
    bns = [m for m in result.model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(bn.num_features == bn.running_mean.numel() for bn in bns)


def test_flatten_maps_each_channel_to_a_block_of_columns():
    model = get_model("lenet5", seed=0).eval()
    keep = torch.ones(16, dtype=torch.bool)
    keep[[3, 7]] = False
    params = dict(model.named_parameters())
    mask = Mask({"conv2.weight": keep[:, None, None, None].expand_as(params["conv2.weight"]).clone(),
                 "conv2.bias": keep.clone()})
    result = compact(model, mask)
    assert result.model.fc1.in_features == 14 * 25
    expected = model.fc1.weight.detach().reshape(120, 16, 25)[:, keep].reshape(120, -1)
    assert torch.equal(result.model.fc1.weight.detach(), expected)


def test_layer_with_zero_live_units_keeps_one_zero_unit():
    model = get_model("lenet300", seed=0).eval()
    params = dict(model.named_parameters())
    mask = Mask({"fc2.weight": torch.zeros_like(params["fc2.weight"], dtype=torch.bool),
                 "fc2.bias": torch.zeros(100, dtype=torch.bool)})
    result = compact(model, mask)
    row = next(r for r in result.report.layers if r.name == "fc2")
    assert (row.status, row.kept) == ("empty", 1)
    assert result.model.fc2.weight.shape == (1, 300) and result.model.classifier.weight.shape == (10, 1)
    x = torch.randn(16, 1, 28, 28)
    assert max_diff(result.model, mask.apply_(model), x) == 0.0
    assert torch.equal(result.model.fc2.weight.detach(), torch.zeros(1, 300))


def test_constant_units_are_kept_and_counted():
    model = get_model("lenet300", seed=0).eval()
    with torch.no_grad():
        model.fc1.weight[:5] = 0  # zero weights, non-zero bias: a constant unit
        model.fc1.weight[5:9] = 0
        model.fc1.bias[5:9] = 0  # truly dead
        model.fc1.bias[:5] = torch.tensor([0.5, -0.5, 1.0, 0.0, 2.0])  # relu(-0.5)=0 and bias 0: dead too
    result = compact(model)
    row = result.report.layers[0]
    assert (row.units, row.kept, row.constant) == (300, 294, 3)
    assert max_diff(result.model, model, torch.randn(8, 1, 28, 28)) <= 1e-6


def test_removals_cascade_through_inputs_of_the_next_layer():
    model = nn.Sequential(nn.Linear(6, 4, bias=False), nn.ReLU(), nn.Linear(4, 3, bias=False), nn.ReLU(),
                          nn.Linear(3, 2))
    with torch.no_grad():
        model[0].weight[1:] = 0  # units 1..3 of layer 0 dead
        model[2].weight[0, 1:] = 0.5  # unit 0 of layer 2 only reads dead inputs: dead once they are removed
        model[2].weight[0, 0] = 0
    result = compact(model)
    assert [r.kept for r in result.report.layers] == [1, 2, 2]
    assert max_diff(result.model, model, torch.randn(5, 6)) <= 1e-6


def test_classifier_outputs_are_never_removed():
    model = get_model("lenet300", seed=0).eval()
    params = dict(model.named_parameters())
    keep = torch.ones_like(params["classifier.weight"], dtype=torch.bool)
    keep[3] = False
    result = compact(model, Mask({"classifier.weight": keep, "classifier.bias": torch.arange(10) != 3}))
    assert result.model.classifier.out_features == 10
    assert result.report.layers[-1].status == "output"


def test_unknown_module_in_between_is_reported_not_silently_skipped():
    model = nn.Sequential(nn.Linear(8, 6), nn.Sigmoid(), nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    with torch.no_grad():
        model[0].weight[:3], model[0].bias[:3] = 0, 0  # dead, but sigmoid(0) = 0.5 is not zero
        model[2].weight[:2], model[2].bias[:2] = 0, 0
    result = compact(model)
    first, second = result.report.layers[:2]
    assert first.status == "skipped" and "Sigmoid" in first.note and first.kept == 6
    assert second.status == "compacted" and second.kept == 2
    assert [r.name for r in result.report.skipped] == ["0"]
    assert max_diff(result.model, model, torch.randn(4, 8)) <= 1e-6


def test_layers_inside_a_custom_container_are_reported():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 6)

        def forward(self, x):
            return self.fc(x) + x

    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), Block(), nn.Linear(6, 2))
    result = compact(model)
    notes = {r.name: (r.status, r.note) for r in result.report.layers}
    assert notes["2.fc"][0] == "skipped" and "Block" in notes["2.fc"][1]
    assert notes["0"][0] == "skipped" and "'2' (Block)" in notes["0"][1]


def test_nested_sequentials_are_walked():
    model = nn.Sequential(nn.Sequential(nn.Linear(5, 4), nn.ReLU()), nn.Sequential(nn.Linear(4, 3)))
    with torch.no_grad():
        model[0][0].weight[1], model[0][0].bias[1] = 0, 0
    result = compact(model)
    assert result.model[0][0].out_features == 3 and result.model[1][0].in_features == 3
    assert max_diff(result.model, model, torch.randn(3, 5)) <= 1e-6


def test_non_sequential_model_is_a_clear_error():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            return self.fc(x)

    with pytest.raises(ConfigError, match="nn.Sequential"):
        compact(Net())


def test_input_model_and_mask_are_untouched():
    model = get_model("lenet300", seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    mask = prune_model(get_model("lenet300", seed=0), "unit", 50.0)
    compact(model, mask)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("name", ["mlp", "lenet300", "lenet5", "convnet"])
def test_architecture_json_round_trip(name):
    model = randomise_batchnorm(get_model(name, seed=0))
    spec = json.loads(json.dumps(architecture_to_json(model)))
    rebuilt = model_from_architecture(spec)
    rebuilt.load_state_dict(model.state_dict())
    assert max_diff(rebuilt, model, torch.randn(3, 1, 28, 28)) == 0.0


def test_architecture_errors_name_the_layer():
    spec = architecture_to_json(nn.Sequential(nn.Linear(2, 2)))
    spec["layers"][0]["type"] = "Transformer"
    with pytest.raises(ConfigError, match="'0' has unknown type 'Transformer'"):
        model_from_architecture(spec)
    with pytest.raises(ConfigError, match="not a prunekit architecture"):
        model_from_architecture({"layers": []})
    bad_args = architecture_to_json(nn.Sequential(nn.Linear(2, 2)))
    bad_args["layers"][0]["args"]["in_features"] = -3
    with pytest.raises(ConfigError, match="cannot build"):
        model_from_architecture(bad_args)

    class MyReLU(nn.ReLU):
        pass

    with pytest.raises(ConfigError, match="MyReLU"):
        architecture_to_json(nn.Sequential(MyReLU()))


def test_compact_checkpoint_round_trip_without_pickles(tmp_path):
    model = randomise_batchnorm(get_model("convnet", seed=2))
    result = compact(model, prune_model(model, "unit", 50.0))
    save_checkpoint(tmp_path / "c", result.model, model_name=None, architecture=True,
                    compaction=result.report.to_dict(), compacted_from={"name": "convnet"})
    files = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert files == ["architecture.json", "config.json", "manifest.json", "metrics.json", "model.safetensors"]
    loaded = load_checkpoint(tmp_path / "c")
    assert max_diff(loaded.model, result.model, torch.randn(4, 1, 28, 28)) == 0.0
    assert loaded.config["compaction"]["params_after"] == result.report.params_after
    (tmp_path / "c" / "architecture.json").write_text('{"format": "prunekit.architecture", "version": 1, '
                                                      '"layers": [{"name": "x", "type": "Bogus"}]}')
    with pytest.raises(CheckpointError, match="architecture.json.*Bogus"):
        load_checkpoint(tmp_path / "c")
