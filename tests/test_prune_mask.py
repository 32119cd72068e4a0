"""Mask: counts, apply, holding zeros through training, BatchNorm channels, files."""

import pytest
import torch
from torch import nn

from prunekit.errors import CheckpointError, ConfigError
from prunekit.prune import Mask, prune_model


def convnet(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 6, 3), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
    )


def train_steps(model, opt, steps=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x, y = torch.randn(8, 1, 10, 10, generator=g), torch.randint(0, 4, (8,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def test_counts_and_intersection():
    a = Mask({"w": torch.tensor([[True, False], [True, True]]), "b": torch.tensor([False, True])})
    assert (a.num_total(), a.num_pruned(), a.sparsity()) == (6, 2, pytest.approx(100 * 2 / 6))
    assert a.per_tensor_sparsity() == {"w": 25.0, "b": 50.0}
    b = Mask({"w": torch.tensor([[False, True], [True, True]]), "c": torch.tensor([True])})
    both = a & b
    assert both["w"].tolist() == [[False, False], [True, True]]
    assert set(both) == {"w", "b", "c"} and torch.equal(both["b"], a["b"])
    assert both != a and Mask(a.to_dict()) == a


def test_constructor_rejects_non_bool():
    with pytest.raises(ConfigError, match="'w'.*torch.bool.*float32"):
        Mask({"w": torch.ones(2)})


@pytest.mark.parametrize("method", ["weight", "unit"])
@pytest.mark.parametrize("make_opt", [
    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-2),
    lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=1e-2),
])
def test_pruned_weights_stay_zero_through_training(method, make_opt):
    model = convnet()
    opt = make_opt(model.parameters())
    train_steps(model, opt)  # builds momentum / Adam state for every weight
    ids = [id(p) for p in model.parameters()]
    mask = prune_model(model, method, 60.0)
    assert [id(p) for p in model.parameters()] == ids
    params = dict(model.named_parameters())
    handle = mask.hold(model, opt)
    train_steps(model, opt, steps=4, seed=2)
    for name, keep in mask.items():
        assert (params[name].detach()[~keep] == 0).all(), name
    assert [id(p) for p in model.parameters()] == ids
    assert (params["0.weight"].detach()[mask["0.weight"]] != 0).any()  # kept ones still train
    handle.remove()  # without the hooks the optimizer state moves pruned weights again
    train_steps(model, opt, steps=2, seed=3)
    assert (params["0.weight"].detach()[~mask["0.weight"]] != 0).any()


def test_unit_pruning_zeros_batchnorm_channels_and_outputs():
    model = convnet()
    mask = prune_model(model, "unit", 50.0)
    dead = ~mask["0.weight"].reshape(6, -1)[:, 0]
    assert int(dead.sum()) == 3
    for name in ("0.bias", "1.weight", "1.bias"):
        assert torch.equal(mask[name], ~dead), name
        assert (dict(model.named_parameters())[name].detach()[dead] == 0).all()
    assert set(mask) == {"0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias", "4.weight", "4.bias"}
    x = torch.randn(4, 1, 10, 10)
    for train in (True, False):
        model.train(train)
        assert (model[:2](x)[:, dead] == 0).all()


def test_batchnorm_is_linked_only_when_it_follows_with_matching_features():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.BatchNorm1d(6), nn.Linear(6, 3), nn.BatchNorm1d(3))
    mask = prune_model(model, "unit", 50.0)
    assert set(mask) == {"0.weight", "0.bias"}  # BN after ReLU is not "immediately following"


def test_hold_gradient_hook_without_optimizer():
    model = nn.Linear(3, 2)
    mask = Mask({"weight": torch.tensor([[True, False, True], [False, True, True]])})
    with mask.hold(model):
        model(torch.ones(1, 3)).sum().backward()
        assert (model.weight.grad[~mask["weight"]] == 0).all()
        assert (model.weight.grad[mask["weight"]] != 0).all()
    model.weight.grad = None
    model(torch.ones(1, 3)).sum().backward()  # hooks removed: full gradient
    assert (model.weight.grad != 0).all()


def test_save_load_round_trip(tmp_path):
    model = convnet()
    mask = prune_model(model, "unit", 50.0)
    path = tmp_path / "mask.safetensors"
    mask.save(path)
    loaded = Mask.load(path)
    assert loaded == mask and all(t.dtype == torch.bool for t in loaded.values())
    loaded.validate(convnet(seed=5))
    fresh = convnet(seed=5)
    loaded.apply_(fresh)
    assert (fresh[0].weight.detach()[~mask["0.weight"]] == 0).all()


def test_mask_that_does_not_fit_the_model(tmp_path):
    path = tmp_path / "mask.safetensors"
    prune_model(convnet(), "weight", 50.0).save(path)
    wider = nn.Sequential(nn.Conv2d(1, 7, 3), nn.BatchNorm2d(7))
    with pytest.raises(CheckpointError) as err:
        Mask.load(path).validate(wider)
    assert "'0.weight'" in str(err.value) and "(6, 1, 3, 3)" in str(err.value) and "(7, 1, 3, 3)" in str(err.value)
    with pytest.raises(CheckpointError, match="'3.weight' is not a parameter"):
        Mask.load(path).apply_(nn.Sequential(nn.Conv2d(1, 6, 3)))


def test_loading_bad_files(tmp_path):
    pickled = tmp_path / "mask.pt"
    torch.save({"w": torch.ones(2, dtype=torch.bool)}, pickled)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01not a safetensors file")
    for path in (pickled, garbage, tmp_path / "missing.safetensors"):
        with pytest.raises(CheckpointError) as err:
            Mask.load(path)
        assert str(path) in str(err.value)
    floats = tmp_path / "floats.safetensors"
    from safetensors.torch import save_file

    save_file({"w": torch.ones(2)}, str(floats))
    with pytest.raises(CheckpointError, match="non-bool"):
        Mask.load(floats)


def test_ones_like():
    model = convnet()
    ones = Mask.ones_like(model, ["0.weight"])
    assert list(ones) == ["0.weight"] and ones.num_pruned() == 0 and ones["0.weight"].shape == (6, 1, 3, 3)
    assert set(Mask.ones_like(model)) == {n for n, _ in model.named_parameters()}
    with pytest.raises(ConfigError, match="nope"):
        Mask.ones_like(model, ["nope"])
