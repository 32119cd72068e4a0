import pytest
import torch

from prunekit.errors import ConfigError
from prunekit.models import get_model, list_models, model_info


def test_registry_lists_the_four_builtin_models():
    assert [m.name for m in list_models()] == ["convnet", "lenet300", "lenet5", "mlp"]
    assert all(m.description for m in list_models())


@pytest.mark.parametrize("name", ["mlp", "lenet300", "lenet5", "convnet"])
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
    with pytest.raises(ConfigError, match="unknown model 'resnet'.*convnet, lenet300, lenet5, mlp"):
        get_model("resnet")


def test_unknown_model_argument_is_named():
    with pytest.raises(ConfigError, match="takes no argument.*'width'"):
        get_model("mlp", width=3)
