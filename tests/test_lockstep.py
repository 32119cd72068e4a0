"""Calibration in one lock-step pass gives the masks and weights of the step-by-step path, on stacks of
blocks, on whole models and on models whose batches take different routes."""

from __future__ import annotations

import threading

import pytest
import torch
from torch import nn

import prunekit.prune.calibration as calibration
from prunekit.errors import ConfigError
from prunekit.models import get_model
from prunekit.prune import prune_model
from prunekit.prune.lockstep import OutOfStep, run_in_lockstep


def stepwise(monkeypatch):
    """Force the step-by-step path (one truncated pass per step) for the next calibration."""
    def refuse(runs, layers, visit):
        raise OutOfStep(set())
    monkeypatch.setattr(calibration, "run_in_lockstep", refuse)


def pruned_twice(monkeypatch, build, criterion, data, **options):
    models = [build(), build()]
    first = prune_model(models[0], "weight", 50.0, criterion=criterion, calibration=data, **options)
    stepwise(monkeypatch)
    second = prune_model(models[1], "weight", 50.0, criterion=criterion, calibration=data, **options)
    return models, first, second


@pytest.mark.parametrize("criterion", ["wanda", "sparsegpt"])
def test_one_lockstep_pass_equals_the_stepwise_path_on_a_language_model(tmp_path, monkeypatch, criterion):
    pytest.importorskip("transformers")
    from prunekit.data.text import token_splits
    from prunekit.hf import load
    from prunekit.hf.tiny import tiny_folder

    folder = tiny_folder(str(tmp_path), "llama")
    splits = token_splits("text:pydoc", load("hf:" + folder).tokenizer, held_out=256, window=64)
    batches = splits.calibration(4, 64, 2)
    models, first, second = pruned_twice(monkeypatch, lambda: load("hf:" + folder).model, criterion, batches,
                                         calibration_batches=2)
    assert len(first) == 14 and all(torch.equal(first[k], second[k]) for k in first)
    for (name, a), (_, b) in zip(models[0].named_parameters(), models[1].named_parameters()):
        assert torch.equal(a, b), name  # sparsegpt's updated weights too


@pytest.mark.parametrize("criterion", ["wanda", "sparsegpt"])
def test_one_lockstep_pass_equals_the_stepwise_path_on_a_cnn(monkeypatch, criterion):
    def build():
        return get_model("resnet20", seed=0, num_classes=10, in_channels=1).eval()
    data = (torch.randn(24, 1, 28, 28, generator=torch.Generator().manual_seed(1)), torch.zeros(24, dtype=torch.long))
    models, first, second = pruned_twice(monkeypatch, build, criterion, data, calibration_batches=3)
    assert all(torch.equal(first[k], second[k]) for k in first)
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(models[0](x), models[1](x))


class Routed(nn.Module):
    """Batches whose mean is positive take one branch, the others the other: no common order of layers."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.out = nn.Linear(6, 6), nn.Linear(6, 6), nn.Linear(6, 2)

    def forward(self, x):
        x = self.b(self.a(x)) if x.mean() > 0 else self.a(self.b(x))
        return self.out(x)


def test_batches_taking_different_routes_fall_back_to_steps():
    torch.manual_seed(0)
    net = Routed()
    data = [torch.randn(8, 6) + 3, torch.randn(8, 6) - 3]
    visited = []
    with pytest.raises(OutOfStep) as info:
        run_in_lockstep([lambda x=x: net(x) for x in data], {"a": net.a, "b": net.b, "out": net.out},
                        lambda name, module, inputs: visited.append(name))
    assert visited == [] and info.value.visited == set()
    mask = prune_model(net, "weight", 50.0, criterion="wanda", calibration=torch.cat(data), calibration_batches=2,
                       include_output=True)
    assert set(mask) == {"a.weight", "b.weight", "out.weight"}
    assert all(abs(float(m.float().mean()) - 0.5) < 0.01 for m in mask.values())


def test_an_error_in_a_batch_or_a_visit_stops_every_thread_and_is_raised():
    net = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 1))
    before = threading.active_count()

    def run_failing():
        raise RuntimeError("batch 1 fails")
    runs = [lambda: net(torch.randn(2, 3)), run_failing, lambda: net(torch.randn(2, 3))]
    with pytest.raises(RuntimeError, match="batch 1 fails"):
        run_in_lockstep(runs, {"0": net[0], "2": net[2]}, lambda *a: None)

    def refuse(name, module, inputs):
        raise ConfigError(f"{name} refused")
    with pytest.raises(ConfigError, match="0 refused"):
        run_in_lockstep([runs[0], runs[2]], {"0": net[0], "2": net[2]}, refuse)
    assert threading.active_count() == before
    assert not net[0]._forward_pre_hooks and not net[2]._forward_pre_hooks


def test_a_layer_called_twice_per_pass_is_refused():
    layer = nn.Linear(4, 4)
    net = nn.Sequential(layer, nn.ReLU(), layer)
    with pytest.raises(ConfigError, match="more than once"):
        prune_model(net, "weight", 50.0, criterion="wanda", calibration=torch.randn(8, 4), calibration_batches=1,
                    include_output=True)
