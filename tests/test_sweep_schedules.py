"""``prunekit sweep --schedules``: every (schedule, method, k) in the results, per-method plots,
training cost recorded, and chained schedules that resume exactly after an interruption."""

import json

import matplotlib.image
import pytest

from prunekit.cli import main
from prunekit.errors import ConfigError
from prunekit.study import read_results
from prunekit.schedules import Recovery
from prunekit.study import SweepConfig, run_sweep
from prunekit.training import TrainConfig

TINY = TrainConfig(epochs=0.05, batch_size=256, lr=0.02, lr_schedule="cosine")
TINY_ARGS = ["--finetune-epochs", "0.05", "--iterative-epochs", "0.05", "--gradual-epochs", "0.05",
             "--lottery-epochs", "0.05", "--gradual-prunings", "3"]
SCHEDULES = ("oneshot", "finetune", "iterative", "gradual", "lottery")


def test_sweep_with_schedules_writes_every_point_per_method_plots_and_costs(baseline, mnist_dir, tmp_path, capsys):
    out = tmp_path / "sweep"
    code = main(["sweep", "--checkpoint", str(baseline), "--schedules", ",".join(SCHEDULES), "--methods",
                 "weight,unit", "--sparsities", "50,90", "--out", str(out), "--data-dir", str(mnist_dir), "--quiet",
                 *TINY_ARGS])
    assert code == 0
    points = read_results(out)
    got = {(p["schedule"], p["method"], p["sparsity_target"]) for p in points}
    assert got == {(s, m, k) for s in SCHEDULES for m in ("weight", "unit") for k in (50.0, 90.0)}
    by = {(p["schedule"], p["method"], p["sparsity_target"]): p for p in points}
    assert by[("oneshot", "weight", 90.0)]["train_epochs"] == 0
    assert by[("finetune", "weight", 90.0)]["train_epochs"] == pytest.approx(0.05)
    # 0 -> 50 in one round, 50 -> 90 in two: cumulative epochs along the chain
    assert by[("iterative", "unit", 50.0)]["train_epochs"] == pytest.approx(0.05)
    assert by[("lottery", "unit", 90.0)]["train_epochs"] == pytest.approx(0.15)
    assert by[("lottery", "unit", 90.0)]["train_seconds"] > by[("lottery", "unit", 50.0)]["train_seconds"] > 0
    assert all(p["sparsity_actual"] == pytest.approx(p["sparsity_target"], abs=0.5) for p in points)
    for method in ("weight", "unit"):
        png = out / f"accuracy_vs_sparsity_{method}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        height, width = matplotlib.image.imread(png).shape[:2]
        assert height > 300 and width > 500
    report = (out / "REPORT.md").read_text()
    assert "## Schedules at equal cost" in report and "accuracy_vs_sparsity_unit.png" in report
    assert "trained for" in capsys.readouterr().out


def test_interrupted_chains_resume_to_the_same_results(baseline, mnist_dir, tmp_path):
    recipe = Recovery(iterative=TINY, lottery=TINY)
    config = SweepConfig(model="lenet300", methods=("weight",), sparsities=(50, 75, 90),
                         schedules=("iterative", "lottery"), recovery=recipe)

    def run(out, on_point=None):
        return run_sweep(config, out, checkpoint=str(baseline), data_dir=str(mnist_dir), progress=False,
                         on_point=on_point)

    whole = run(tmp_path / "whole")
    seen = []

    def stop_after_two(point):
        seen.append(point["sparsity_target"])
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "resumed", stop_after_two)
    state = json.loads((tmp_path / "resumed" / "chains" / "iterative-weight-layer" / "state.json").read_text())
    assert state["sparsity"] == 75.0
    rerun = []
    resumed = run(tmp_path / "resumed", lambda p: rerun.append((p["schedule"], p["sparsity_target"])))
    assert rerun == [("iterative", 90.0), ("lottery", 50.0), ("lottery", 75.0), ("lottery", 90.0)]

    def comparable(points):
        return [{k: v for k, v in p.items() if k not in ("seconds", "train_seconds", "latency_b1_ratio", "latency_b256_ratio")} for p in points]

    assert len(resumed.points) == 6
    assert comparable(resumed.points) == comparable(whole.points)


def test_a_finished_sweep_reruns_nothing_and_a_changed_recipe_reruns_only_its_schedule(baseline, mnist_dir, tmp_path):
    base = SweepConfig(model="lenet300", methods=("unit",), sparsities=(50,), schedules=("oneshot", "finetune"),
                       recovery=Recovery(finetune=TINY))
    kwargs = dict(checkpoint=str(baseline), data_dir=str(mnist_dir), progress=False)
    assert run_sweep(base, tmp_path, **kwargs).points_run == 2
    assert run_sweep(base, tmp_path, **kwargs).points_run == 0
    changed = SweepConfig(model="lenet300", methods=("unit",), sparsities=(50,), schedules=("oneshot", "finetune"),
                          recovery=Recovery(finetune=TrainConfig(epochs=0.1, lr=0.02)))
    ran = []
    run_sweep(changed, tmp_path, on_point=ran.append, **kwargs)
    assert [(p["schedule"], p["train_epochs"]) for p in ran] == [("finetune", 0.1)]


def test_a_distill_suffix_adds_a_distilled_series_beside_the_plain_one(baseline, mnist_dir, tmp_path):
    config = SweepConfig(model="lenet300", methods=("unit",), sparsities=(80,),
                         schedules=("finetune", "finetune+distill"), recovery=Recovery(finetune=TINY))
    result = run_sweep(config, tmp_path, checkpoint=str(baseline), data_dir=str(mnist_dir), progress=False)
    by = {p["schedule"]: p for p in result.points}
    assert set(by) == {"finetune", "finetune+distill"}
    assert by["finetune"]["test_accuracy"] != by["finetune+distill"]["test_accuracy"]
    assert by["finetune"]["train_epochs"] == by["finetune+distill"]["train_epochs"] == pytest.approx(0.05)


def test_unknown_schedule_is_a_clear_error(tmp_path, mnist_dir, capsys):
    with pytest.raises(ConfigError, match="unknown schedule 'han'"):
        SweepConfig(schedules=("oneshot", "han"))
    with pytest.raises(ConfigError, match="SCHEDULE\\+distill"):
        SweepConfig(schedules=("iterative+kd",))
    with pytest.raises(ConfigError, match="does not train"):
        SweepConfig(schedules=("oneshot+distill",))
    code = main(["sweep", "--schedules", "oneshot,han", "--out", str(tmp_path), "--data-dir", str(mnist_dir),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown schedule 'han'" in err and "lottery" in err and "Traceback" not in err
    assert not (tmp_path / "results.csv").exists()
