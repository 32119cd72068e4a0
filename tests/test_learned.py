"""Learned filter pruning (Huang et al. 2018): REINFORCE agents learn which units a network can lose."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunekit.errors import ConfigError
from prunekit.prune import CRITERIA, prune_model
from prunekit.prune.learned import LearnedConfig, learned_criterion
from prunekit.prune.structured import prunable_groups
from prunekit.structure import trace

CLASSES = 8


def signal_and_noise(seed: int):
    """A hidden layer of 16 units: 8 carry one class each (the classifier reads only them); the other 8
    have larger filters over pure-noise inputs and nothing reads them. Norms would keep the noise."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(16, generator=generator)
    signal, noise = order[:CLASSES], order[CLASSES:]
    model = nn.Sequential(nn.Linear(16, 16, bias=False), nn.ReLU(), nn.Linear(16, CLASSES, bias=False))
    with torch.no_grad():
        first = torch.zeros(16, 16)
        first[signal, torch.arange(CLASSES)] = 3.0
        first[noise, CLASSES:] = torch.randn(CLASSES, 16 - CLASSES, generator=generator) * 3.0
        model[0].weight.copy_(first)
        readout = torch.zeros(CLASSES, 16)
        readout[torch.arange(CLASSES), signal] = 5.0
        model[2].weight.copy_(readout)
    labels = torch.randint(0, CLASSES, (512,), generator=generator)
    inputs = torch.randn(512, 16, generator=generator) * 0.3
    inputs[torch.arange(512), labels] += 1.0
    return model, (inputs, labels), set(signal.tolist()), set(noise.tolist())


TOY = LearnedConfig(progress=False)  # the defaults: 20 rounds of 8 samples


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_agent_learns_to_drop_the_noise_units(seed):
    model, data, signal, noise = signal_and_noise(seed)
    before = model.state_dict()
    mask = prune_model(model, "unit", 50.0, criterion=learned_criterion(TOY), calibration=data)
    kept = set(torch.nonzero(mask["0.weight"].any(dim=1)).flatten().tolist())
    assert kept == signal
    inputs, labels = data
    assert (model(inputs).argmax(1) == labels).float().mean() > 0.9  # nothing it needed went
    by_norm = prune_model(signal_and_noise(seed)[0], "unit", 50.0, criterion="l2")
    assert set(torch.nonzero(by_norm["0.weight"].any(dim=1)).flatten().tolist()) == noise  # norms get it wrong
    for name, value in model.state_dict().items():  # the agents worked on a copy: only the mask changed it
        assert torch.equal(value, before[name] * mask[name] if name in mask else before[name])


def test_the_registered_criterion_and_its_scores_are_deterministic():
    assert "learned" in CRITERIA.names()
    masks = []
    for _ in range(2):
        model, data, _, _ = signal_and_noise(3)
        quick = learned_criterion(LearnedConfig(iterations=3, samples=4, progress=False))
        masks.append(prune_model(model, "unit", 25.0, criterion=quick, calibration=data))
    assert masks[0] == masks[1]


class Residual(nn.Module):
    """Two producers joined by an add (one coupled group), then a hidden layer (a second group)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 6)
        self.b = nn.Linear(6, 6)
        self.c = nn.Linear(6, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        h = self.a(x)
        return self.head(torch.relu(self.c(torch.relu(h + self.b(torch.relu(h))))))


def test_groups_are_learned_one_after_another_and_pruned_as_one():
    torch.manual_seed(0)
    model, example = Residual(), torch.randn(2, 3)
    assert len(prunable_groups(trace(model, example))) == 2
    x, y = torch.randn(256, 3), torch.randint(0, 2, (256,))
    quick = learned_criterion(LearnedConfig(iterations=4, samples=4, finetune_batches=2, progress=False))
    mask = prune_model(model, "unit", 50.0, criterion=quick, example_inputs=example, calibration=(x, y))
    assert torch.equal(mask["a.weight"].any(1), mask["b.weight"].any(1))
    assert int(mask["a.weight"].any(1).sum()) == 3 and int(mask["c.weight"].any(1).sum()) == 2


def test_bad_input_is_refused_with_the_reason():
    model, (inputs, _), _, _ = signal_and_noise(0)
    with pytest.raises(ConfigError, match="'learned' needs data"):
        prune_model(model, "unit", 50.0, criterion="learned")
    with pytest.raises(ConfigError, match="need labels"):
        prune_model(model, "unit", 50.0, criterion="learned", calibration=[inputs[:128], inputs[128:]])
    with pytest.raises(ConfigError, match="drop_bound must be a fraction"):
        LearnedConfig(drop_bound=2.0)
    with pytest.raises(ConfigError, match="scores whole units"):
        prune_model(model, "weight", 50.0, criterion="learned", calibration=(inputs, inputs[:, 0].long()))


def test_a_sweep_compares_criteria_at_equal_macs(baseline, tmp_path, mnist_dir, capsys):
    from prunekit.cli import main
    from prunekit.study import read_results

    out = tmp_path / "criteria"
    assert main(["sweep", "--checkpoint", str(baseline), "--methods", "unit", "--flop-reductions", "2",
                 "--schedules", "oneshot@l2,oneshot@learned,oneshot@random",
                 "--data-dir", str(mnist_dir), "--no-measure", "--out", str(out), "--quiet"]) == 0
    assert "2x fewer MACs = " in capsys.readouterr().out
    points = read_results(out)
    assert {p["schedule"] for p in points} == {"oneshot@l2", "oneshot@learned", "oneshot@random"}
    ratios = {p["flops_effective"] / p["flops_dense"] for p in points}
    assert len({round(r, 6) for r in ratios}) == 1 and 0.45 < ratios.pop() <= 0.5  # equal MACs, just under half
    report = (out / "REPORT.md").read_text()
    assert "## Criteria at equal MACs" in report and "learned" in report
    assert (out / "accuracy_vs_macs.png").stat().st_size > 10_000
    assert main(["sweep", "--checkpoint", str(baseline), "--methods", "unit,weight", "--flop-reductions", "2",
                 "--out", str(tmp_path / "bad"), "--data-dir", str(mnist_dir)]) == 2
    assert "one pruning method" in capsys.readouterr().err
