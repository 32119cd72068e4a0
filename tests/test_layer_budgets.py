"""Per-layer sparsity plans and LAMP (layer-adaptive magnitude) allocation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunekit.errors import ConfigError
from prunekit.prune import CRITERIA, lamp, prune_model
from prunekit.prune.mask import as_mask


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 40), nn.ReLU(), nn.Linear(40, 30), nn.ReLU(), nn.Linear(30, 5))


def zero_fraction(mask, name) -> float:
    return 1 - mask[name].float().mean().item()


def test_a_plan_sets_each_layers_sparsity_and_leaves_the_rest_whole():
    mask = prune_model(mlp(), "weight", {"0": 90.0, "2": 50.0})
    assert zero_fraction(mask, "0.weight") == pytest.approx(0.9)
    assert zero_fraction(mask, "2.weight") == pytest.approx(0.5)
    mask = prune_model(mlp(), "weight", {"2": 25.0, "*": 80.0})  # first matching pattern wins
    assert zero_fraction(mask, "0.weight") == pytest.approx(0.8) and zero_fraction(mask, "2.weight") == pytest.approx(0.25)
    units = prune_model(mlp(), "unit", {"0": 50.0})
    assert int(units["0.weight"].any(1).sum()) == 20 and bool(units["2.weight"].any(1).all())


def test_a_plan_works_on_traced_groups():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.head = nn.Linear(4, 8), nn.Linear(8, 6), nn.Linear(6, 2)

        def forward(self, x):
            return self.head(torch.relu(self.b(torch.relu(self.a(x)))))

    mask = prune_model(Two(), "unit", {"a": 75.0}, example_inputs=torch.randn(2, 4))
    assert int(mask["a.weight"].any(1).sum()) == 2 and bool(mask["b.weight"].any(1).all())


def test_bad_plans_name_the_pattern_or_value():
    with pytest.raises(ConfigError, match="'conv9' matches no prunable layer; layers: 0, 2"):
        prune_model(mlp(), "weight", {"conv9": 50.0})
    with pytest.raises(ConfigError, match="sparsity for layers '0' must be a percentage in \\[0, 100\\), got 120"):
        prune_model(mlp(), "weight", {"0": 120})
    with pytest.raises(ConfigError, match="use scope='layer'"):
        prune_model(mlp(), "weight", {"0": 50.0}, scope="global")
    with pytest.raises(ConfigError, match="at least one"):
        prune_model(mlp(), "weight", {})


def test_lamp_scores_against_a_direct_computation():
    w = torch.randn(7, 3)
    flat = w.flatten().double()
    expected = torch.stack([v * v / (flat[flat.abs() >= v.abs()] ** 2).sum() for v in flat]).reshape(w.shape)
    assert torch.allclose(lamp(w), expected)
    assert "lamp" in CRITERIA.names()


def test_lamp_allocates_a_global_sparsity_unevenly_and_keeps_every_layer_alive():
    model = mlp()
    with torch.no_grad():
        model[2].weight.mul_(10)  # a layer of larger weights: global magnitude would spare it, LAMP need not
    mask = prune_model(model, "weight", 95.0, scope="global", criterion="lamp")
    zeros = {n: zero_fraction(mask, n) for n in ("0.weight", "2.weight")}
    total = sum(mask[n].numel() for n in zeros)
    assert sum(zeros[n] * mask[n].numel() for n in zeros) / total == pytest.approx(0.95, abs=1e-3)
    assert zeros["0.weight"] != pytest.approx(zeros["2.weight"])  # not the uniform allocation
    assert all(mask[n].any() for n in zeros)
    scaled = mlp()
    with torch.no_grad():
        scaled[2].weight.mul_(10)
    by_magnitude = prune_model(scaled, "weight", 95.0, scope="global")
    assert zero_fraction(by_magnitude, "0.weight") > zeros["0.weight"]  # magnitude starves the small layer


def test_sensitivity_curves_and_a_greedy_plan_on_known_curves():
    from prunekit.study.sensitivity import Sensitivity, allocate

    curves = Sensitivity("weight", 0.9, 300, 0, {"fragile": 100, "robust": 200})
    for k in (50.0, 90.0):  # the robust layer loses nothing until 90%; the fragile one loses a lot at once
        curves.rows.append({"layer": "fragile", "sparsity": k, "accuracy": 0.65 if k < 90 else 0.2, "params_removed": k,
                            "macs_removed": 0})
        curves.rows.append({"layer": "robust", "sparsity": k, "accuracy": 0.9 if k < 90 else 0.85,
                            "params_removed": 2 * k, "macs_removed": 0})
    assert allocate(curves, 30.0) == {"fragile": 0.0, "robust": 50.0}
    assert allocate(curves, 60.0) == {"fragile": 0.0, "robust": 90.0}
    assert allocate(curves, 75.0) == {"fragile": 50.0, "robust": 90.0}
    with pytest.raises(ConfigError, match="out of reach of the sensitivity grid: .* removes 90.0%"):
        allocate(curves, 95.0)
    with pytest.raises(ConfigError, match="unknown budget kind 'energy'"):
        allocate(curves, 50.0, "energy")
    with pytest.raises(ConfigError, match="a latency budget needs curves measured with latency_batch"):
        allocate(curves, 50.0, "latency")


def test_cli_sensitivity_writes_curves_and_a_plan_that_prune_applies(baseline, tmp_path, mnist_dir, capsys):
    import json

    from prunekit.checkpoint import load_checkpoint
    from prunekit.cli import main

    out = tmp_path / "sens"
    assert main(["sensitivity", "--checkpoint", str(baseline), "--method", "weight", "--sparsities", "50,90,99",
                 "--validation-samples", "1000", "--target", "90", "--latency-batch", "32", "--out", str(out),
                 "--data-dir", str(mnist_dir), "--quiet"]) == 0
    data = json.loads((out / "sensitivity.json").read_text())
    assert {r["layer"] for r in data["rows"]} == {"fc1", "fc2"} and len(data["rows"]) == 6  # the classifier left whole
    assert all(-1 < r["latency_removed"] < 1 for r in data["rows"])  # measured, as a fraction of the dense latency
    assert (out / "sensitivity.png").stat().st_size > 10_000 and (out / "sensitivity.csv").exists()
    plan = json.loads((out / "ratios.json").read_text())
    assert set(plan) == {"fc1", "fc2"}
    pruned = tmp_path / "planned"
    assert main(["prune", "--checkpoint", str(baseline), "--method", "weight", "--ratios", str(out / "ratios.json"),
                 "--out", str(pruned), "--data-dir", str(mnist_dir), "--quiet"]) == 0
    ckpt = load_checkpoint(pruned)
    for layer, k in plan.items():
        assert zero_fraction(ckpt.mask, f"{layer}.weight") == pytest.approx(k / 100, abs=1e-3)
    assert ckpt.metrics["sparsity_actual"] >= 90.0
    capsys.readouterr()
    (tmp_path / "bad.json").write_text('{"fc1": 50, "conv7": 20}')
    assert main(["prune", "--checkpoint", str(baseline), "--ratios", str(tmp_path / "bad.json"),
                 "--out", str(tmp_path / "x"), "--data-dir", str(mnist_dir), "--quiet"]) == 2
    assert "'conv7' matches no prunable layer" in capsys.readouterr().err
    (tmp_path / "list.json").write_text("[1, 2]")
    assert main(["prune", "--checkpoint", str(baseline), "--ratios", str(tmp_path / "list.json"),
                 "--out", str(tmp_path / "y"), "--data-dir", str(mnist_dir), "--quiet"]) == 2
    assert "expected a JSON object of layer patterns" in capsys.readouterr().err


def test_an_iterative_schedule_scales_the_plan():
    from prunekit.prune import Pruner
    from prunekit.schedules import PruneSpec

    spec = PruneSpec(plan=(("0", 90.0), ("2", 30.0)), plan_sparsity=60.0)
    model = mlp()
    mask = Pruner(model, spec).prune(30.0)  # a level of the plan: every layer its share
    assert zero_fraction(mask, "0.weight") == pytest.approx(0.45) and zero_fraction(mask, "2.weight") == pytest.approx(0.15)
    with pytest.raises(ConfigError, match="use scope='layer'"):
        PruneSpec(scope="global", plan=(("0", 90.0),), plan_sparsity=90.0)


def test_a_latency_target_is_met_by_measurement_or_refused_with_the_reachable_latency():
    from prunekit.study.latency_budget import plan_for_latency

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 4))
    x = torch.randn(512, 32)
    y = (x[:, :2].sum(1) > 0).long()
    result = plan_for_latency(model, 0.6, (x, y), x[:2], batch_size=128, sparsities=(50, 75, 90), progress=False)
    assert result.measured_ratio <= 0.6 and set(result.plan) == {"0", "2"}
    assert {"latency_removed"} <= set(result.curves.rows[0])
    with pytest.raises(ConfigError, match="latency target 0.001x is out of reach at batch 128: .* measures"):
        plan_for_latency(model, 0.001, (x, y), x[:2], batch_size=128, sparsities=(50,), progress=False)
    with pytest.raises(ConfigError, match="in \\(0, 1\\)"):
        plan_for_latency(model, 1.5, (x, y), x[:2], progress=False)


def test_the_reported_latency_is_a_fresh_measurement_not_the_lucky_one_the_search_picked(monkeypatch):
    import prunekit.plan.latency as budget
    import prunekit.plan.sensitivity as sensitivity

    # a fake timer: a plan's true ratio is the fraction of weights it keeps; its first timing is 0.08 lucky
    truth: dict[tuple, float] = {}

    def kept(mask):
        mask = as_mask(mask)
        return sum(int(m.sum()) for m in mask.values()) / sum(m.numel() for m in mask.values())

    def timed(model, mask, example, **kwargs):
        key = tuple(int(m.sum()) for m in as_mask(mask).values())
        first = key not in truth
        truth[key] = kept(mask)
        return truth[key] - (0.08 if first else 0.0)

    monkeypatch.setattr(budget, "compact_latency_ratio", timed)
    monkeypatch.setattr(sensitivity, "compact_latency_ratio", lambda model, mask, example, **kw: kept(mask))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
    x = torch.randn(256, 16)
    y = (x[:, 0] > 0).long()
    result = budget.plan_for_latency(model, 0.6, (x, y), x[:2], batch_size=64, sparsities=(25, 50, 60, 75),
                                     progress=False)
    fooled = [truth[k] for k in truth if truth[k] - 0.08 <= 0.6 < truth[k]]
    assert fooled, "the fake timer should have made some plan look faster than the target"
    assert result.measured_ratio == result.tried[-1][1] <= 0.6  # the confirmation, not a lucky first timing
    assert result.measured_ratio in truth.values()


def test_aligned_latency_plans_keep_multiples_of_the_alignment(monkeypatch):
    import prunekit.plan.latency as budget
    import prunekit.plan.sensitivity as sensitivity

    def kept(model, mask, example, **kwargs):  # a deterministic stand-in for the timer
        mask = as_mask(mask)
        return sum(int(m.sum()) for m in mask.values()) / sum(m.numel() for m in mask.values())

    monkeypatch.setattr(budget, "compact_latency_ratio", kept)
    monkeypatch.setattr(sensitivity, "compact_latency_ratio", kept)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 40), nn.ReLU(), nn.Linear(40, 24), nn.ReLU(), nn.Linear(24, 4))
    x = torch.randn(256, 16)
    y = (x[:, 0] > 0).long()
    result = budget.plan_for_latency(model, 0.5, (x, y), x[:2], batch_size=64, align=8, progress=False)
    widths = {name: round(model[int(name)].out_features * (1 - k / 100)) for name, k in result.plan.items()}
    assert result.measured_ratio <= 0.5 and all(w % 8 == 0 and w >= 8 for w in widths.values()), widths
    assert {r["sparsity"] for r in result.curves.curve("2")} <= {100 * (24 - w) / 24 for w in (8, 16)}
    with pytest.raises(ConfigError, match="positive integer such as 8, got 0"):
        budget.plan_for_latency(model, 0.5, (x, y), x[:2], align=0, progress=False)


def _weights_kept(model, mask, example, **kwargs):
    """A deterministic stand-in for the latency timer: the fraction of the weights a mask keeps."""
    mask = as_mask(mask)
    return sum(int(m.sum()) for m in mask.values()) / sum(m.numel() for m in mask.values())


def test_cli_prune_to_a_measured_latency_target(baseline, tmp_path, mnist_dir, capsys, monkeypatch):
    import prunekit.plan.latency as budget
    import prunekit.plan.sensitivity as sensitivity
    from prunekit.checkpoint import load_checkpoint
    from prunekit.cli import main

    # the command's plumbing, timed by a stand-in (LeNet-300-100 at batch 64 measures about 0.7x at best, too
    # close to a target for a loaded machine; the real timer is tested above on a larger model)
    monkeypatch.setattr(budget, "compact_latency_ratio", _weights_kept)
    monkeypatch.setattr(sensitivity, "compact_latency_ratio", _weights_kept)
    out = tmp_path / "lat"
    assert main(["prune", "--checkpoint", str(baseline), "--method", "unit", "--target-latency", "0.8",
                 "--latency-batch", "64", "--out", str(out), "--data-dir", str(mnist_dir), "--quiet"]) == 0
    printed = capsys.readouterr().out
    metrics = load_checkpoint(out).metrics
    assert metrics["latency_ratio_measured"] <= 0.8 and metrics["latency_target"] == 0.8
    assert f"measured {metrics['latency_ratio_measured']:.3f}x" in printed
    assert main(["prune", "--checkpoint", str(baseline), "--method", "weight", "--target-latency", "0.5",
                 "--out", str(tmp_path / "w"), "--data-dir", str(mnist_dir), "--quiet"]) == 2
    assert "use method 'unit'" in capsys.readouterr().err
    assert main(["prune", "--checkpoint", str(baseline), "--method", "unit", "--sparsity", "50", "--align-channels",
                 "8", "--out", str(tmp_path / "a"), "--data-dir", str(mnist_dir), "--quiet"]) == 2
    assert "applies to a latency target (--target-latency)" in capsys.readouterr().err


def test_the_report_shows_per_layer_sparsities_of_uneven_points(baseline, tmp_path, mnist_dir):
    from prunekit.cli import main
    from prunekit.study import read_results

    out = tmp_path / "global"
    assert main(["sweep", "--checkpoint", str(baseline), "--methods", "weight", "--sparsities", "90", "--scope",
                 "global", "--data-dir", str(mnist_dir), "--no-measure", "--out", str(out), "--quiet"]) == 0
    point = read_results(out)[0]
    assert set(point["layer_sparsity"]) == {"fc1", "fc2"}
    report = (out / "REPORT.md").read_text()
    assert "## Per layer" in report and f"| {point['layer_sparsity']['fc1']:.1f} |" in report
