"""The pruning request (PruneSpec: its rules checked once) and the Pruner (the model's structure built once)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import prunekit.structure.model as pruner_module  # where the one trace happens
from prunekit.cli import main
from prunekit.errors import ConfigError
from prunekit.prune import CRITERIA, METHODS, Pruner, PruneSpec, PruningMethod, prune_model
from prunekit.schedules import PruneSpec as ScheduleSpec


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4))


@pytest.mark.parametrize("fields, message", [
    (dict(method="unit", pattern="2:4"), "an N:M pattern prunes individual weights: use method='weight'"),
    (dict(pattern="2:4", scope="global"), "an N:M pattern prunes each layer on its own: use scope='layer'"),
    (dict(method="unit", reconstruct=True), "reconstruct=True re-solves the weights a weight mask keeps"),
    (dict(criterion="unit_l2"), "criterion 'unit_l2' scores whole units; use it with method='unit'"),
    (dict(include_inexact=True), "include_inexact adds groups of units a normalisation mixes: use method='unit'"),
    (dict(criterion="wanda", scope="global"), "criterion 'wanda' prunes each layer on its own: use scope='layer'"),
])
def test_a_rule_is_checked_by_the_spec_and_reads_the_same_from_the_facade(fields, message):
    with pytest.raises(ConfigError) as from_spec:
        PruneSpec(**fields)
    assert message in str(from_spec.value)
    facade = {k: v for k, v in fields.items() if k != "method"}
    with pytest.raises(ConfigError) as from_prune_model:
        prune_model(mlp(), fields.get("method", "weight"), **facade)
    assert str(from_prune_model.value) == str(from_spec.value)


def test_the_same_message_on_the_command_line(tmp_path, capsys):
    with pytest.raises(ConfigError) as from_spec:
        PruneSpec("unit", pattern="2:4")
    assert main(["bench", "latency", "--model", "lenet300", "--method", "unit", "--pattern", "2:4",
                 "--batch-sizes", "1", "--repeats", "1"]) == 2
    assert str(from_spec.value) in capsys.readouterr().err


def test_a_plan_target_with_a_global_scope_is_the_specs_rule_too():
    with pytest.raises(ConfigError) as from_fields:
        PruneSpec(scope="global", plan=(("0", 50.0),), plan_sparsity=50.0)
    with pytest.raises(ConfigError) as from_target:
        Pruner(mlp(), PruneSpec(scope="global")).prune({"0": 50.0})
    assert str(from_fields.value) == str(from_target.value)


def test_the_schedules_spec_is_the_same_type():
    assert ScheduleSpec is PruneSpec


def test_a_pruner_traces_its_model_once(monkeypatch):
    calls = []
    real = pruner_module.trace

    def counting(model, example_inputs):
        calls.append(1)
        return real(model, example_inputs)

    monkeypatch.setattr(pruner_module, "trace", counting)
    model = mlp()
    pruner = Pruner(model, PruneSpec("unit"), example_inputs=torch.randn(2, 16))
    mask = None
    for level in (25.0, 50.0, 75.0):
        mask = pruner.prune(level, mask=mask)
    assert len(calls) == 1
    assert int(mask["0.weight"].any(1).sum()) == 8  # 75% of 32 units gone
    assert pruner.structure is not None and len(calls) == 1


def test_pruning_then_compacting_and_timing_a_copy_traces_once(monkeypatch):
    import copy

    from prunekit.bench.compact_latency import compact_latency_ratio
    from prunekit.compact import compact

    calls = []
    real = pruner_module.trace
    monkeypatch.setattr(pruner_module, "trace", lambda m, x: calls.append(1) or real(m, x))
    model = mlp()
    pruner = Pruner(model, PruneSpec("unit"), example_inputs=torch.randn(2, 16))
    mask = pruner.prune(50.0)
    small = compact(model, mask, structure=pruner.structure).model
    assert small[0].out_features == 16
    compact(copy.deepcopy(model), structure=pruner.structure)  # a copy has the same architecture
    compact_latency_ratio(model, mask, torch.randn(2, 16), structure=pruner.structure, batch_size=8, repeats=1)
    assert len(calls) == 1 and pruner.structure.traces == 1
    with pytest.raises(ConfigError, match="another architecture"):
        compact(small, structure=pruner.structure)
    with pytest.raises(ConfigError, match="another architecture"):
        Pruner(small, PruneSpec("unit"), structure=pruner.structure)


def test_a_walked_model_is_never_traced(monkeypatch):
    monkeypatch.setattr(pruner_module, "trace", lambda *a: pytest.fail("traced"))
    mask = Pruner(mlp(), PruneSpec("unit")).prune(50.0)
    assert int(mask["0.weight"].any(1).sum()) == 16


def test_a_schedule_job_prunes_every_level_with_one_pruner(monkeypatch):
    from prunekit.schedules import Job

    calls = []
    real = pruner_module.trace
    monkeypatch.setattr(pruner_module, "trace", lambda m, x: calls.append(1) or real(m, x))
    job = Job(mlp(), (torch.randn(8, 16), torch.zeros(8, dtype=torch.long)), PruneSpec("unit"),
              example_inputs=torch.randn(2, 16), progress=False)
    mask = job.prune(30.0)
    job.prune(60.0, mask)
    assert len(calls) == 1 and job.pruner is job.pruner


def cubed(weight):
    """A third-party criterion: |w|^3 (the same ranking as magnitude)."""
    return weight.abs() ** 3


def first_half(model, targets, sparsity, scope, criterion, previous):
    """A third-party method: prune the first half of every target layer's rows."""
    keep = {}
    for layer, module in targets:
        rows = module.weight.shape[0]
        k = torch.ones_like(module.weight, dtype=torch.bool)
        k[: rows // 2] = False
        keep[f"{layer}.weight"] = k
    return keep


@pytest.fixture
def third_party():
    METHODS.register("first_half", PruningMethod("first_half", "magnitude", first_half),
                     description="the first half of every layer's rows")
    CRITERIA.register("cubed", cubed, description="|w|^3")
    yield
    METHODS.unregister("first_half")
    CRITERIA.unregister("cubed")


def test_a_registered_method_and_criterion_work_from_the_api_and_the_cli(third_party, baseline, mnist_dir, tmp_path):
    model = mlp()
    mask = prune_model(model, "first_half", 50.0)
    assert not mask["0.weight"][:16].any() and mask["0.weight"][16:].all()
    spec = PruneSpec(criterion="cubed")
    assert torch.equal(Pruner(mlp(), spec).prune(90.0)["2.weight"], prune_model(mlp(), "weight", 90.0)["2.weight"])
    for method, criterion in (("first_half", "magnitude"), ("weight", "cubed")):
        out = tmp_path / f"{method}-{criterion}"
        assert main(["prune", "--checkpoint", str(baseline), "--method", method, "--criterion", criterion,
                     "--sparsity", "50", "--quiet", "--data-dir", str(mnist_dir), "--out", str(out)]) == 0
        assert out.is_dir()


def test_a_registered_schedule_that_trains_gets_its_recipe_from_recovery(baseline, mnist_dir, tmp_path):
    from prunekit.schedules import SCHEDULES, Recovery, register_schedule
    from prunekit.schedules.kinds import PruneThenTrain
    from prunekit.study import prune_checkpoint
    from prunekit.training import TrainConfig

    register_schedule(PruneThenTrain("warm_restart", "a third-party schedule: prune once, then train"))
    try:
        recovery = Recovery(others=(("warm_restart", TrainConfig(epochs=0.03, batch_size=128)),))
        result = prune_checkpoint(baseline, PruneSpec("weight"), 50.0, out=tmp_path / "a", schedule="warm_restart",
                                  recovery=recovery, data_dir=str(mnist_dir), progress=False)
        assert result.metrics["train_epochs"] == pytest.approx(0.03)
        assert Recovery().train_config("warm_restart") == Recovery().finetune  # not listed: finetune's recipe
        assert main(["prune", "--checkpoint", str(baseline), "--schedule", "warm_restart", "--sparsity", "50",
                     "--finetune-epochs", "0.02", "--quiet", "--data-dir", str(mnist_dir),
                     "--out", str(tmp_path / "b")]) == 0
    finally:
        SCHEDULES.unregister("warm_restart")
    with pytest.raises(ConfigError, match="pairs"):
        Recovery(others=(("x", 3),))


def test_the_commands_options_are_the_specs_fields(baseline, mnist_dir, tmp_path, capsys):
    """prune, sensitivity and bench latency generate their pruning options from PruneSpec: a field of the spec
    (include_inexact, calibration_batches...) is an option, and the spec's rules answer for all of them."""
    from prunekit.cli import build_parser

    parser = build_parser()
    for command in (["prune"], ["bench", "latency"]):
        sub = parser._subparsers._group_actions[0].choices[command[0]]
        if len(command) > 1:
            sub = sub._subparsers._group_actions[0].choices[command[1]]
        options = {o for action in sub._actions for o in action.option_strings}
        assert {"--method", "--scope", "--layers", "--criterion", "--pattern", "--include-output",
                "--include-inexact"} <= options, command
    sweep = parser._subparsers._group_actions[0].choices["sweep"]
    options = {o for action in sweep._actions for o in action.option_strings}
    assert {"--layers", "--pattern", "--include-output", "--include-inexact", "--reconstruct",
            "--calibration-batches"} <= options  # its methods and criteria: --methods, SCHEDULE@CRITERION
    from prunekit.study import SweepConfig

    config = SweepConfig(methods=("weight", "unit"), include_inexact=True)
    assert config.prune_spec("unit").include_inexact and not config.prune_spec("weight").include_inexact
    out = tmp_path / "u50"
    assert main(["prune", "--checkpoint", str(baseline), "--method", "unit", "--sparsity", "50", "--include-inexact",
                 "--quiet", "--data-dir", str(mnist_dir), "--out", str(out)]) == 0
    import json

    assert json.loads((out / "config.json").read_text())["pruning"]["include_inexact"] is True
    with pytest.raises(ConfigError) as from_spec:
        PruneSpec("weight", include_inexact=True)
    capsys.readouterr()
    assert main(["prune", "--checkpoint", str(baseline), "--sparsity", "50", "--include-inexact", "--quiet",
                 "--out", str(tmp_path / "x")]) == 2
    assert str(from_spec.value) in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_sweep_of_an_nm_pattern(baseline, mnist_dir, tmp_path, capsys):
    import json

    out = tmp_path / "nm"
    assert main(["sweep", "--checkpoint", str(baseline), "--methods", "weight", "--pattern", "2:4",
                 "--schedules", "oneshot,oneshot@wanda", "--calibration-batches", "2", "--no-measure", "--quiet",
                 "--data-dir", str(mnist_dir), "--out", str(out)]) == 0
    points = json.loads((out / "results.json").read_text())
    assert sorted(p["schedule"] for p in points) == ["oneshot", "oneshot@wanda"]
    assert all(p["sparsity_target"] == 50.0 and 49.0 < p["sparsity_actual"] <= 50.0 for p in points)
    with pytest.raises(ConfigError, match="prunes individual weights"):
        from prunekit.study import SweepConfig

        SweepConfig(methods=("weight", "unit"), pattern="2:4")
    assert main(["sweep", "--checkpoint", str(baseline), "--methods", "weight", "--pattern", "2:4",
                 "--sparsities", "50,90", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "its sweep's levels are 0 and 50" in capsys.readouterr().err


def test_a_sweep_of_a_per_layer_plan(baseline, mnist_dir, tmp_path):
    import json

    (tmp_path / "plan.json").write_text(json.dumps({"fc1": 90, "fc2": 30}))
    out = tmp_path / "plan"
    assert main(["sweep", "--checkpoint", str(baseline), "--methods", "weight", "--ratios", str(tmp_path / "plan.json"),
                 "--sparsities", "40,80", "--no-measure", "--quiet", "--data-dir", str(mnist_dir),
                 "--out", str(out)]) == 0
    points = {p["sparsity_target"]: p for p in json.loads((out / "results.json").read_text())}
    assert sorted(points) == [40.0, 80.0]
    # fc1 holds 235,200 of the 265,200 pruned weights: the plan reaches 83.0% at full strength
    full = (0.9 * 235200 + 0.3 * 30000) / 265200 * 100
    for level, point in points.items():
        assert point["sparsity_actual"] == pytest.approx(level, abs=0.2)  # each layer at level/full of its share
        assert point["layer_sparsity"]["fc1"] == pytest.approx(90 * level / full, abs=0.05)


def test_a_sweep_of_a_pattern_refuses_schedules_that_prune_in_steps():
    from prunekit.study import SweepConfig

    for schedule in ("iterative", "gradual", "lottery"):
        with pytest.raises(ConfigError, match=f"an N:M pattern prunes in one step: .* not {schedule}"):
            SweepConfig(methods=("weight",), pattern="2:4", schedules=("oneshot", schedule))


def test_a_plans_reach_counts_the_layers_the_spec_prunes():
    from prunekit.study.prune_run import plan_sparsity

    model = mlp()  # 16-32-32-4: layer "4" is the output layer
    reach = plan_sparsity(model, "weight", {"0": 50.0, "4": 90.0}, None, None, spec=PruneSpec(include_output=True))
    assert reach == pytest.approx(100 * (256 + 115) / (512 + 1024 + 128), abs=0.01)  # "2" is kept whole


def test_an_installed_plugin_adds_a_method_to_the_command_line(baseline, mnist_dir, tmp_path, monkeypatch):
    """A package with a ``prunekit.plugins`` entry point (here a dist-info folder on sys.path) registers its
    method when the command line starts; prunekit is not edited and nothing is imported by hand."""
    import importlib

    import prunekit.plugins as plugins

    site = tmp_path / "site"
    (site / "halves_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "halves_plugin-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: halves-plugin\nVersion: 0.1\n")
    (site / "halves_plugin-0.1.dist-info" / "entry_points.txt").write_text(
        "[prunekit.plugins]\nhalves = halves_plugin:register\nbroken = no_such_module_here\n")
    (site / "halves_plugin.py").write_text(
        "from prunekit.prune import METHODS, PruningMethod\n"
        "import tests_first_half\n"
        "def register():\n"
        "    METHODS.register('plugin_half', PruningMethod('plugin_half', 'magnitude', tests_first_half.first_half),\n"
        "                     description='the first half of every layer rows (a plug-in)')\n")
    (site / "tests_first_half.py").write_text(
        "import torch\n"
        "def first_half(model, targets, sparsity, scope, criterion, previous):\n"
        "    keep = {}\n"
        "    for layer, module in targets:\n"
        "        k = torch.ones_like(module.weight, dtype=torch.bool)\n"
        "        k[: module.weight.shape[0] // 2] = False\n"
        "        keep[f'{layer}.weight'] = k\n"
        "    return keep\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    monkeypatch.setattr(plugins, "_loaded", {})
    try:
        with pytest.warns(UserWarning, match="plug-in 'broken'"):
            code = main(["prune", "--checkpoint", str(baseline), "--method", "plugin_half", "--sparsity", "50",
                         "--quiet", "--data-dir", str(mnist_dir), "--out", str(tmp_path / "out")])
        assert code == 0
        from prunekit.checkpoint import load_checkpoint

        mask = load_checkpoint(tmp_path / "out").mask
        assert not mask["fc1.weight"][:150].any() and mask["fc1.weight"][150:].all()
    finally:
        if "plugin_half" in METHODS.names():
            METHODS.unregister("plugin_half")
