"""Re-estimating BatchNorm statistics after pruning (adaptive BN), alone and inside the sensitivity curves."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from prunekit.errors import ConfigError
from prunekit.training import evaluate, has_batchnorm, recalibrate_batchnorm


def net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 10), nn.Dropout(0.9), nn.BatchNorm1d(10), nn.ReLU(), nn.Linear(10, 3))


def test_the_statistics_are_the_data_statistics_and_nothing_else_changes():
    model = net().train()
    x = torch.randn(96, 6) * 2 + 3
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    assert recalibrate_batchnorm(model, x, batches=3, batch_size=32) == 96
    with torch.no_grad():
        hidden = model[0](x)  # dropout must not run: the layers before the BatchNorm are in eval mode
    bn = model[2]
    torch.testing.assert_close(bn.running_mean, hidden.mean(0))
    per_batch_var = torch.stack([hidden[i:i + 32].var(0, unbiased=True) for i in range(0, 96, 32)])
    torch.testing.assert_close(bn.running_var, per_batch_var.mean(0))
    assert bn.momentum == 0.1 and model.training and all(m.training for m in model.modules())
    for k, v in weights.items():
        assert torch.equal(model.state_dict()[k], v), k


def test_only_the_first_batches_are_read_and_labels_are_ignored():
    model = net()
    x = torch.randn(64, 6)
    x[32:] += 100  # the second batch would move the mean far
    recalibrate_batchnorm(model, (x, torch.zeros(64, dtype=torch.long)), batches=1, batch_size=32)
    with torch.no_grad():
        expected = model[0](x[:32]).mean(0)
    torch.testing.assert_close(model[2].running_mean, expected)


def test_a_model_without_batchnorm_is_left_alone():
    model = nn.Sequential(nn.Linear(3, 2))
    before = copy.deepcopy(model.state_dict())
    assert not has_batchnorm(model) and recalibrate_batchnorm(model, torch.randn(8, 3)) == 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_bad_settings_are_refused_and_empty_data_loses_nothing():
    model = net()
    with pytest.raises(ConfigError, match="positive number of batches, got 0"):
        recalibrate_batchnorm(model, torch.randn(8, 6), batches=0)
    recalibrate_batchnorm(model, torch.randn(40, 6) + 5, batches=2)
    before = copy.deepcopy(model[2].state_dict())
    with pytest.raises(ConfigError, match="got no batch"):
        recalibrate_batchnorm(model, [], batches=2)
    assert all(torch.equal(before[k], v) for k, v in model[2].state_dict().items())


def test_sensitivity_evaluates_every_point_after_re_estimating_the_statistics():
    from prunekit.prune import prune_model
    from prunekit.study.sensitivity import layer_sensitivity

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 12), nn.BatchNorm1d(12), nn.ReLU(),
                          nn.Linear(12, 3))
    x = torch.randn(300, 6)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    model.train()
    with torch.no_grad():
        for _ in range(5):  # running statistics of the dense network
            model(x)
    model.eval()
    plain = layer_sensitivity(model, "unit", (x, y), sparsities=(50,), bn_batches=0, progress=False)
    adapted = layer_sensitivity(model, "unit", (x, y), sparsities=(50,), bn_batches=2, progress=False)
    assert plain.dense_accuracy == evaluate(model, (x, y))["accuracy"]
    for row in adapted.rows:
        pruned = copy.deepcopy(model)
        prune_model(pruned, "unit", {row["layer"]: row["sparsity"]})
        recalibrate_batchnorm(pruned, (x, y), batches=2)
        assert row["accuracy"] == evaluate(pruned, (x, y))["accuracy"]
    first = next(r for r in adapted.rows if r["layer"] == "0")
    assert first["accuracy"] != next(r for r in plain.rows if r["layer"] == "0")["accuracy"]
    with pytest.raises(ConfigError, match="bn_batches is a number of batches >= 0, got -1"):
        layer_sensitivity(model, "unit", (x, y), sparsities=(50,), bn_batches=-1, progress=False)
