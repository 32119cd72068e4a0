"""Criteria of whole units on toy models with known answers: l1, l2, bn_scale, fpgm, taylor, random."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from prunekit.checkpoint import load_checkpoint
from prunekit.cli import main
from prunekit.errors import ConfigError
from prunekit.prune import CRITERIA, prune_model
from prunekit.prune.structured import prunable_groups
from prunekit.prune.unit_criteria import UNIT_CRITERIA, CriterionRun
from prunekit.prune.units import views_of_groups
from prunekit.structure import trace
from prunekit.study import read_results


def two_layer(first_rows: list[list[float]], hidden: int | None = None) -> nn.Sequential:
    rows = torch.tensor(first_rows)
    model = nn.Sequential(nn.Linear(rows.shape[1], rows.shape[0], bias=False), nn.ReLU(),
                          nn.Linear(rows.shape[0], 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(rows)
        model[2].weight.fill_(1.0)
    return model


def kept_units(mask, name="0.weight") -> list[bool]:
    return mask[name].flatten(1).any(dim=1).tolist()


def test_every_criterion_is_registered_and_listed():
    assert set(UNIT_CRITERIA) | {"magnitude", "unit_l2", "random"} <= set(CRITERIA.names())


def test_l1_and_l2_rank_filters_by_their_own_norm():
    rows = [[3.0, 0, 0, 0], [1.0, 1, 1, 1]]  # L1: 3 < 4; L2: 3 > 2
    assert kept_units(prune_model(two_layer(rows), "unit", 50.0, criterion="l1")) == [False, True]
    assert kept_units(prune_model(two_layer(rows), "unit", 50.0, criterion="l2")) == [True, False]


def test_fpgm_removes_the_filter_nearest_the_geometric_median():
    rows = [[0.0, 0], [1.0, 0], [5.0, 0]]  # summed distances 6, 5, 9: the middle one is the most replaceable
    assert kept_units(prune_model(two_layer(rows), "unit", 34.0, criterion="fpgm")) == [True, False, True]
    assert kept_units(prune_model(two_layer(rows), "unit", 34.0, criterion="l2")) == [False, True, True]


@pytest.mark.parametrize("name", ["l1", "l2", "fpgm"])
def test_identical_filters_get_equal_scores(name):
    model = two_layer([[1.0, -2.0], [1.0, -2.0], [0.5, 4.0]])
    structure = trace(model, torch.randn(2, 2))
    views = views_of_groups(model, prunable_groups(structure))
    scores = CriterionRun(UNIT_CRITERIA[name][0]).unit_scores(model, views)[0]
    assert scores[0] == scores[1] and scores[0] != scores[2]


def test_bn_scale_follows_the_absolute_gamma():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 3))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([0.5, -3.0, 0.1, 2.0]))
    mask = prune_model(model, "unit", 50.0, criterion="bn_scale")
    assert kept_units(mask) == [False, True, False, True]
    assert mask["1.weight"].tolist() == [False, True, False, True]  # the BatchNorm channels go too


def test_taylor_drops_the_unit_the_loss_does_not_depend_on():
    torch.manual_seed(0)
    model = two_layer([[5.0, 5.0], [0.3, -0.2], [-0.4, 0.6]])
    with torch.no_grad():  # unit 0 has the largest norm but nothing reads it: zero gradient
        model[2].weight.copy_(torch.tensor([[0.0, 1.0, -1.0], [0.0, -1.0, 1.0]]))
    x = torch.randn(64, 2)
    y = (x[:, 0] > 0).long()
    taylor = prune_model(model, "unit", 34.0, criterion="taylor", calibration=(x, y), calibration_batches=2)
    assert kept_units(taylor) == [False, True, True]
    assert all(p.grad is None for p in model.parameters()) and model.training  # nothing left behind


def test_taylor_weight_scores_and_loaders_of_any_form():
    torch.manual_seed(0)
    model = two_layer([[1.0, 2.0], [3.0, -1.0]])
    with torch.no_grad():
        model[2].weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))  # nothing reads unit 1
    loader = DataLoader(TensorDataset(torch.randn(40, 2), torch.randint(0, 2, (40,))), batch_size=10)
    mask = prune_model(model, "weight", 50.0, criterion="taylor", calibration=loader)
    assert mask["0.weight"].tolist() == [[True, True], [False, False]]  # zero gradient: zero Taylor score
    again = prune_model(two_layer([[1.0, 2.0], [3.0, -1.0]]), "weight", 50.0, criterion="taylor", calibration=loader)
    assert again["0.weight"].shape == (2, 2)


def test_taylor_is_deterministic_for_a_seed():
    def run():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
        x, y = torch.randn(300, 6), torch.randint(0, 3, (300,))
        return prune_model(model, "unit", 50.0, criterion="taylor", calibration=(x, y), calibration_batches=3)

    assert run() == run()


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 4, bias=False)
        self.b = nn.Linear(4, 4, bias=False)
        self.head = nn.Linear(4, 2, bias=False)

    def forward(self, x):
        h = self.a(x)
        return self.head(torch.relu(h + self.b(torch.relu(h))))


def test_a_coupled_group_is_scored_as_one():
    torch.manual_seed(0)
    model = Residual()
    example = torch.randn(2, 3)
    groups = prunable_groups(trace(model, example))
    residual = next(g for g in groups if {"a.weight", "b.weight"} <= {m.name for m in g.parameters})
    view = views_of_groups(model, [residual])[0]
    l1 = CriterionRun(UNIT_CRITERIA["l1"][0]).unit_scores(model, [view])[0]
    expected = model.a.weight.abs().sum(1) + model.b.weight.abs().sum(1)  # both producers' filters
    assert torch.allclose(l1.float(), expected.detach())
    mask = prune_model(model, "unit", 50.0, criterion="fpgm", example_inputs=example)
    assert torch.equal(mask["a.weight"].any(1), mask["b.weight"].any(1))  # one decision for the group
    x, y = torch.randn(32, 3), torch.randint(0, 2, (32,))
    taylor = prune_model(Residual(), "unit", 50.0, criterion="taylor", example_inputs=example, calibration=(x, y))
    assert int(taylor["a.weight"].any(1).sum()) == 2


def test_bn_scale_without_a_normalisation_names_the_layer():
    with pytest.raises(ConfigError, match="'bn_scale' needs a normalisation layer .* after '0'"):
        prune_model(two_layer([[1.0, 2.0], [3.0, 4.0]]), "unit", 50.0, criterion="bn_scale")


def test_cli_prune_and_sweep_take_a_criterion(baseline, tmp_path, mnist_dir, capsys):
    out = tmp_path / "u50-taylor"
    assert main(["prune", "--checkpoint", str(baseline), "--method", "unit", "--sparsity", "50", "--criterion",
                 "taylor", "--calibration-batches", "2", "--out", str(out), "--data-dir", str(mnist_dir),
                 "--quiet"]) == 0
    assert json.loads((out / "config.json").read_text())["pruning"]["criterion"] == "taylor"
    by_l2 = prune_model(load_checkpoint(baseline).model, "unit", 50.0)
    assert load_checkpoint(out).mask != by_l2  # another ranking than the default
    sweep = tmp_path / "sweep"
    assert main(["sweep", "--checkpoint", str(baseline), "--methods", "unit", "--sparsities", "0,60",
                 "--schedules", "oneshot@l1,oneshot@fpgm,oneshot@taylor", "--data-dir", str(mnist_dir),
                 "--no-measure", "--out", str(sweep), "--quiet"]) == 0
    points = read_results(sweep)
    assert {p["schedule"] for p in points} == {"oneshot@l1", "oneshot@fpgm", "oneshot@taylor"}
    accuracy = {p["schedule"]: p["test_accuracy"] for p in points if p["sparsity_target"] == 60.0}
    assert len(set(accuracy.values())) > 1  # different criteria, different units removed
    capsys.readouterr()
    assert main(["sweep", "--checkpoint", str(baseline), "--schedules", "oneshot@hessian", "--out",
                 str(tmp_path / "bad"), "--data-dir", str(mnist_dir)]) == 2
    assert "'hessian'" in capsys.readouterr().err
