"""Moving between prunekit masks and torch.nn.utils.prune, both ways."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.utils.prune as torch_prune
from torch import nn

import prunekit
from prunekit.errors import ConfigError


def convnet(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 8),
                         nn.ReLU(), nn.Linear(8, 3)).eval()


def torch_pruned():
    model = convnet()
    torch_prune.ln_structured(model[0], "weight", amount=0.5, n=2, dim=0)
    torch_prune.l1_unstructured(model[4], "weight", amount=0.6)
    torch_prune.l1_unstructured(model[4], "weight", amount=0.5)  # a PruningContainer of two steps
    return model


def test_from_torch_prune_gives_a_plain_model_with_the_same_outputs_and_mask():
    model = torch_pruned()
    x = torch.randn(5, 1, 8, 8)
    want = model(x)
    masks = {"0.weight": model[0].weight_mask.bool(), "4.weight": model[4].weight_mask.bool()}
    orig = model[4].weight_orig
    plain, mask = prunekit.from_torch_prune(model)
    assert plain is model and set(mask) == set(masks)
    assert all(torch.equal(mask[n], m) for n, m in masks.items())
    assert not hasattr(plain[4], "weight_orig") and not plain[4]._forward_pre_hooks
    assert plain[4].weight is orig  # the same parameter object: optimizers keep working
    assert torch.allclose(plain(x), want)
    assert round(mask.per_tensor_sparsity()["4.weight"]) == 80  # 60% then half of the rest


def test_prune_model_and_compact_take_it_from_there():
    model, mask = prunekit.from_torch_prune(torch_pruned())
    more = prunekit.prune_model(model, "unit", 75.0, mask=mask)
    assert all(not (more[n] & ~mask[n]).any() for n in mask)  # masks only shrink
    result = prunekit.compact(model, more)
    x = torch.randn(3, 1, 8, 8)
    assert torch.allclose(result.model(x), model(x), atol=1e-5)


def test_to_torch_prune_and_back_round_trips():
    model = convnet()
    mask = prunekit.prune_model(model, "weight", 70.0)
    x = torch.randn(4, 1, 8, 8)
    want = model(x)
    pruned = prunekit.to_torch_prune(copy.deepcopy(model), mask)
    assert torch.equal(pruned[0].weight_mask.bool(), mask["0.weight"])
    assert torch.allclose(pruned(x), want)
    with torch.no_grad():  # torch's re-parametrisation keeps the zeros whatever the underlying values
        pruned[0].weight_orig.add_(1.0)
    assert torch.equal(pruned[0].weight == 0, ~mask["0.weight"] | (pruned[0].weight_orig == 0))
    plain, back = prunekit.from_torch_prune(pruned)
    assert back == mask


def test_prunekit_calls_on_a_torch_pruned_model_say_what_to_do():
    model = torch_pruned()
    with pytest.raises(ConfigError, match=r"pruned with torch.nn.utils.prune .*from_torch_prune"):
        prunekit.prune_model(model, "weight", 50.0)
    assert hasattr(model[0], "weight_orig")  # untouched
    result = prunekit.compact(model)  # compaction copies the model, so it converts the copy itself
    x = torch.randn(3, 1, 8, 8)
    assert hasattr(model[0], "weight_orig") and torch.allclose(result.model(x), model(x), atol=1e-5)
    copied, mask = prunekit.from_torch_prune(model, inplace=False)
    assert hasattr(model[0], "weight_orig") and not hasattr(copied[0], "weight_orig")
    assert mask.sparsity() > 0
