"""The target solvers (prunekit.plan): one PruneSpec, one model structure, traced at most once per solve."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import prunekit.structure.model as structure_model
from prunekit.errors import ConfigError
from prunekit.plan import LatencyTarget, layer_sensitivity, prunable_names, solver_spec, sparsity_for_reduction
from prunekit.prune import PruneSpec
from prunekit.structure import model_structure


class Block(nn.Module):
    """A residual MLP with a LayerNorm on the residual width (that group is not exact)."""

    def __init__(self):
        super().__init__()
        self.stem, self.norm = nn.Linear(8, 16), nn.LayerNorm(16)
        self.up, self.down, self.head = nn.Linear(16, 32), nn.Linear(32, 16), nn.Linear(16, 3)

    def forward(self, x):
        h = self.norm(self.stem(x))
        return self.head(h + self.down(torch.relu(self.up(h))))


@pytest.fixture
def traces(monkeypatch):
    calls = []
    real = structure_model.trace
    monkeypatch.setattr(structure_model, "trace", lambda m, x: calls.append(1) or real(m, x))
    return calls


def data():
    torch.manual_seed(0)
    x = torch.randn(96, 8)
    return x, (x[:, 0] > 0).long()


def test_a_sensitivity_run_with_latency_traces_its_model_once(traces):
    x, y = data()
    curves = layer_sensitivity(Block(), PruneSpec("unit"), (x, y), sparsities=(25, 50), example_inputs=x[:2],
                               latency_batch=16, progress=False)
    assert curves.layers() == ["up"] and len(curves.rows) == 2 and "latency_removed" in curves.rows[0]
    assert len(traces) == 1


def test_include_inexact_reaches_the_solvers():
    x, _ = data()
    structure = model_structure(Block(), x[:2])
    assert prunable_names(Block(), PruneSpec("unit"), structure) == ["up"]
    assert prunable_names(Block(), PruneSpec("unit", include_inexact=True), structure) == ["stem", "up"]


def test_a_flop_target_bisects_on_one_trace(traces):
    x, _ = data()
    k = sparsity_for_reduction(Block(), PruneSpec("unit"), 1.5, example_inputs=x[:2])
    assert 0 < k < 100 and len(traces) == 1


def test_loose_fields_beside_a_spec_and_bad_latency_targets_are_refused():
    assert solver_spec("unit", criterion="l1", layers=None) == PruneSpec("unit", criterion="l1")
    with pytest.raises(ConfigError, match="pass criterion in the PruneSpec"):
        solver_spec(PruneSpec("unit"), criterion="l1")
    for bad, message in (({"ratio": 1.5}, "in \\(0, 1\\)"), ({"ratio": 0.5, "batch": 0}, "batch size"),
                         ({"ratio": 0.5, "align": 0}, "positive integer such as 8")):
        with pytest.raises(ConfigError, match=message):
            LatencyTarget(**bad)


def test_prune_checkpoint_takes_a_spec_and_a_target(baseline, tmp_path, mnist_dir):
    from prunekit.study import prune_checkpoint

    result = prune_checkpoint(baseline, PruneSpec("unit"), {"fc1": 50.0}, out=tmp_path / "plan",
                              data_dir=str(mnist_dir), progress=False)
    pruning = __import__("json").loads((tmp_path / "plan" / "config.json").read_text())["pruning"]
    assert pruning["ratios"] == {"fc1": 50.0} and result.metrics["sparsity_actual"] == pytest.approx(37.5)
    with pytest.raises(ConfigError, match="exactly one of"):
        prune_checkpoint(baseline, PruneSpec("weight"), 50.0, sparsity=60.0, out=tmp_path / "x", progress=False)
    with pytest.raises(ConfigError, match="use method 'unit'"):
        prune_checkpoint(baseline, PruneSpec("weight"), LatencyTarget(0.5), out=tmp_path / "y", progress=False)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
