"""prune_model: peer equality with torch.nn.utils.prune, counts, targets, bad settings."""

import copy

import pytest
import torch
import torch.nn.utils.prune as tprune
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from prunekit.errors import ConfigError
from prunekit.prune import METHODS, SCOPES, prune_model, select_layers

SPARSITIES = [10.0, 33.3, 50.0, 92.5, 99.0]


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 5))


def convnet(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 6, 3), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
    )


def layers_of(model, types=(nn.Linear, nn.Conv2d)):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, types)]


@pytest.mark.parametrize("k", SPARSITIES)
@pytest.mark.parametrize("make", [mlp, convnet])
def test_layer_weight_pruning_equals_l1_unstructured(make, k):
    ours, peer = make(), make()
    mask = prune_model(ours, "weight", k, include_output=True)
    for name, module in layers_of(peer):
        tprune.l1_unstructured(module, "weight", amount=k / 100)
        assert torch.equal(mask[f"{name}.weight"], module.weight_mask.bool()), name
        assert torch.equal(dict(ours.named_modules())[name].weight, module.weight)
    assert set(mask) == {f"{n}.weight" for n, _ in layers_of(peer)}


@pytest.mark.parametrize("k", SPARSITIES)
@pytest.mark.parametrize("make", [mlp, convnet])
def test_unit_pruning_equals_ln_structured(make, k):
    ours, peer = make(), make()
    mask = prune_model(ours, "unit", k)
    for name, module in layers_of(peer)[:-1]:  # the classifier is never unit-pruned
        tprune.ln_structured(module, "weight", amount=k / 100, n=2, dim=0)
        assert torch.equal(mask[f"{name}.weight"], module.weight_mask.bool()), name


@pytest.mark.parametrize("k", SPARSITIES)
@pytest.mark.parametrize("make", [mlp, convnet])
def test_global_pruning_equals_global_unstructured(make, k):
    ours, peer = make(), make()
    mask = prune_model(ours, "weight", k, scope="global", include_output=True)
    pairs = [(m, "weight") for _, m in layers_of(peer)]
    tprune.global_unstructured(pairs, pruning_method=tprune.L1Unstructured, amount=k / 100)
    for name, module in layers_of(peer):
        assert torch.equal(mask[f"{name}.weight"], module.weight_mask.bool()), name


def test_global_unit_pruning_is_one_ranking_of_unit_norms():
    model = mlp()
    norms = [m.weight.detach().norm(dim=1) for _, m in layers_of(model)[:-1]]
    flat = torch.cat(norms)
    n_prune = round(0.4 * flat.numel())
    expected = torch.ones_like(flat, dtype=torch.bool)
    expected[flat.argsort()[:n_prune]] = False
    mask = prune_model(model, "unit", 40.0, scope="global")
    got = torch.cat([mask["0.weight"][:, 0], mask["2.weight"][:, 0]])
    assert torch.equal(got, expected)
    assert torch.equal(mask["0.bias"], mask["0.weight"][:, 0])  # bias follows its unit


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.integers(1, 9), min_size=3, max_size=4),
    st.floats(0.0, 100.0, exclude_max=True),
    st.sampled_from(list(METHODS)),
    st.sampled_from(list(SCOPES)),
)
def test_exact_counts_on_models(widths, k, method, scope):
    torch.manual_seed(0)
    model = nn.Sequential(*[nn.Linear(a, b) for a, b in zip(widths, widths[1:])])
    mask = prune_model(model, method, k, scope=scope)
    pruned = [m for n, m in layers_of(model) if f"{n}.weight" in mask]
    if method == "weight":
        sizes = [m.weight.numel() for m in pruned]
        zeros = [int((m.weight == 0).sum()) for m in pruned]
    else:
        sizes = [m.out_features for m in pruned]
        zeros = [int((m.weight == 0).all(dim=1).sum()) for m in pruned]
    if scope == "layer":
        assert zeros == [round(k / 100 * n) for n in sizes]
    else:
        assert sum(zeros) == round(k / 100 * sum(sizes))
    assert prune_model(copy.deepcopy(model), method, k, scope=scope) == mask  # deterministic


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("scope", list(SCOPES))
def test_iterative_pruning_only_shrinks(method, scope):
    model = mlp()
    masks = [prune_model(model, method, 30.0, scope=scope)]
    for k in (60.0, 90.0):
        masks.append(prune_model(model, method, k, scope=scope, mask=masks[-1]))
    for old, new in zip(masks, masks[1:]):
        assert all(not (new[n] & ~old[n]).any() for n in old)
    before = copy.deepcopy(model.state_dict())
    same = prune_model(model, method, 50.0, scope=scope, mask=masks[-1])  # lower target
    assert same == masks[-1]
    assert all(torch.equal(before[n], t) for n, t in model.state_dict().items())


def test_iterative_counts_already_pruned_entries():
    model = mlp()
    first = prune_model(model, "weight", 50.0)
    second = prune_model(model, "weight", 75.0, mask=first)
    assert (~second["0.weight"]).sum() == round(0.75 * 320)
    assert (~second["0.weight"] & first["0.weight"]).sum() == round(0.75 * 320) - 160


def test_ties_all_equal_weights_exact_and_deterministic():
    model = nn.Sequential(nn.Linear(8, 5), nn.Linear(5, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.5)
    a = prune_model(copy.deepcopy(model), "weight", 92.5)
    b = prune_model(copy.deepcopy(model), "weight", 92.5)
    assert a == b and (~a["0.weight"]).sum() == round(0.925 * 40)
    g = prune_model(copy.deepcopy(model), "weight", 92.5, scope="global", include_output=True)
    assert g.num_pruned() == round(0.925 * 55)
    u = prune_model(copy.deepcopy(model), "unit", 60.0)
    assert (~u["0.weight"][:, 0]).tolist() == [True, True, True, False, False]


@pytest.mark.parametrize("method", ["weight", "unit"])
def test_the_output_layer_is_left_whole_by_default(method):
    model = mlp()
    classifier = model[4].weight.detach().clone()
    mask = prune_model(model, method, 90.0)
    assert "4.weight" not in mask and torch.equal(model[4].weight, classifier)
    assert set(prune_model(mlp(), method, 50.0, layers=["*"])) == set(mask)  # '*' chooses among the hidden layers
    with pytest.raises(ConfigError, match="names only the output layer '4'.*include_output"):
        prune_model(mlp(), method, 50.0, layers=["4"])


def test_include_output_prunes_the_classifier_weights_but_never_its_units():
    assert [n for n, _ in select_layers(mlp(), "weight")] == ["0", "2"]
    assert [n for n, _ in select_layers(mlp(), "weight", include_output=True)] == ["0", "2", "4"]
    mask = prune_model(mlp(), "weight", 50.0, include_output=True)
    assert mask.per_tensor_sparsity()["4.weight"] == 50.0
    with pytest.raises(ConfigError, match="never removes the output layer's units"):
        prune_model(mlp(), "unit", 50.0, include_output=True)


def test_conv_only_model_classifier_is_last_conv():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 3, 1))
    mask = prune_model(model, "unit", 50.0)
    assert set(mask) == {"0.weight", "0.bias"}


def test_layer_patterns_select_layers():
    mask = prune_model(mlp(), "weight", 50.0, layers=["0", "2"])
    assert set(mask) == {"0.weight", "2.weight"}
    with pytest.raises(ConfigError) as err:
        prune_model(mlp(), "weight", 50.0, layers=["fc*"])
    assert "'fc*'" in str(err.value) and "0, 2, 4" in str(err.value)


def test_criterion_callable_can_use_gradients():
    model = mlp()
    model(torch.randn(4, 20)).sum().backward()
    taylor = lambda w, grad: (w * grad).abs()  # noqa: E731
    mask = prune_model(model, "weight", 50.0, criterion=taylor)
    assert mask.per_tensor_sparsity()["0.weight"] == 50.0


def test_random_criterion_is_reproducible_with_manual_seed():
    torch.manual_seed(3)
    a = prune_model(mlp(), "weight", 50.0, criterion="random")
    torch.manual_seed(3)
    b = prune_model(mlp(), "weight", 50.0, criterion="random")
    assert a == b and a != prune_model(mlp(), "weight", 50.0)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(method="neuron"), ["'neuron'", "weight", "unit"]),
        (dict(scope="model"), ["'model'", "layer", "global"]),
        (dict(criterion="hessian"), ["'hessian'", "magnitude", "unit_l2", "taylor", "fpgm"]),
        (dict(criterion="taylor"), ["'taylor' needs data", "calibration="]),
        (dict(criterion="fpgm"), ["'fpgm' scores whole units", "method='unit'"]),
        (dict(method="unit", criterion="bn_scale"), ["'bn_scale' needs a normalisation layer", "'0'"]),
        (dict(criterion="taylor", calibration=(torch.ones(2, 784), torch.zeros(2).long()), calibration_batches=0),
         ["calibration_batches", "0"]),
        (dict(criterion="unit_l2"), ["unit_l2", "method='unit'"]),
        (dict(sparsity=-1), ["-1", "[0, 100)"]),
        (dict(sparsity=100), ["100", "[0, 100)"]),
        (dict(sparsity=150), ["150", "[0, 100)"]),
        (dict(sparsity=float("nan")), ["nan", "[0, 100)"]),
        (dict(layers=[]), ["empty"]),
    ],
)
def test_bad_settings(kwargs, words):
    with pytest.raises(ConfigError) as err:
        prune_model(mlp(), **kwargs)
    assert all(w in str(err.value) for w in words), str(err.value)


@pytest.mark.parametrize("model", [nn.Sequential(nn.ReLU()), nn.Sequential(nn.Flatten())])
def test_model_without_prunable_layers(model):
    with pytest.raises(ConfigError, match="nothing to prune"):
        prune_model(model)


def test_a_lone_output_layer_is_pruned_only_on_request():
    with pytest.raises(ConfigError, match="output layer.*units are never removed"):
        prune_model(nn.Linear(4, 2), "unit", 50.0)
    with pytest.raises(ConfigError, match="output layer.*include_output"):
        prune_model(nn.Linear(4, 2), "weight", 50.0)
    assert set(prune_model(nn.Linear(4, 2), "weight", 50.0, include_output=True)) == {"weight"}
