import pytest
import torch

from prunekit.errors import ConfigError
from prunekit.models import get_model, list_models, model_info


def test_registry_lists_the_builtin_models():
    assert [m.name for m in list_models()] == ["convnet", "lenet300", "lenet5", "lenet5_caffe", "mlp", "resnet", "resnet20",
                                               "resnet56", "vgg"]
    assert all(m.description for m in list_models())


@pytest.mark.parametrize("name", ["mlp", "lenet300", "lenet5", "lenet5_caffe", "convnet", "resnet20", "vgg"])
def test_every_model_maps_mnist_batches_to_ten_logits(name):
    model = get_model(name, seed=0)
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_reference_mlp_architecture():
    model = get_model("mlp")
    shapes = [tuple(p.shape) for p in model.parameters()]
    assert shapes == [(1000, 784), (1000, 1000), (500, 1000), (200, 500), (10, 200)]  # no biases
    assert sum(p.numel() for p in model.parameters()) == 2_386_000
    assert sum(isinstance(m, torch.nn.ReLU) for m in model.modules()) == 4


def test_seed_fixes_initial_weights_without_touching_global_rng():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b, c = get_model("lenet300", seed=1), get_model("lenet300", seed=1), get_model("lenet300", seed=2)
    assert torch.equal(torch.rand(1), before)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.fc1.weight, c.fc1.weight)


def test_model_arguments_change_the_architecture():
    model = get_model("mlp", hidden=[300, 100])
    assert [p.shape[0] for p in model.parameters()] == [300, 100, 10]
    assert model_info("mlp").default_args()["hidden"] == (1000, 1000, 500, 200)


def test_unknown_model_lists_known_names():
    with pytest.raises(ConfigError, match="unknown model 'resnet18'.*convnet, lenet300, lenet5, lenet5_caffe, mlp, resnet"):
        get_model("resnet18")


def test_unknown_model_argument_is_named():
    with pytest.raises(ConfigError, match="takes no argument.*'width'"):
        get_model("mlp", width=3)


def test_deep_cnns_have_the_papers_shapes_and_fit_any_input():
    resnet56 = get_model("resnet56")
    assert len([m for m in resnet56.modules() if isinstance(m, torch.nn.Conv2d)]) == 55 + 2  # + 2 shortcuts
    assert get_model("resnet", depth=56).state_dict().keys() == resnet56.state_dict().keys()
    rgb = get_model("resnet20", num_classes=100, in_channels=3)
    assert rgb(torch.zeros(2, 3, 32, 40)).shape == (2, 100)
    assert get_model("vgg", depth=16, width=0.125, in_channels=3)(torch.zeros(1, 3, 20, 20)).shape == (1, 10)
    with pytest.raises(ConfigError, match="6n \\+ 2"):
        get_model("resnet", depth=21)
    with pytest.raises(ConfigError, match=r"\[11, 13, 16, 19\]"):
        get_model("vgg", depth=12)


def test_resnet_filters_are_pruned_by_coupled_groups_and_removed_exactly():
    import prunekit

    model = get_model("resnet20", seed=0).eval()
    example = torch.randn(2, 1, 28, 28)
    mask = prunekit.prune_model(model, "unit", 50.0, criterion="l1", example_inputs=example)
    alive = [mask[f"layer1.{i}.conv2.weight"].flatten(1).any(1) for i in range(3)]
    assert torch.equal(alive[0], alive[1]) and torch.equal(alive[1], mask["conv1.weight"].flatten(1).any(1))
    result = prunekit.compact(model, mask, example_inputs=example)
    fresh = torch.randn(3, 1, 20, 20)
    assert torch.allclose(result.model(fresh), model(fresh), atol=1e-5)
    assert sum(p.numel() for p in result.model.parameters()) < 0.3 * sum(p.numel() for p in model.parameters())
