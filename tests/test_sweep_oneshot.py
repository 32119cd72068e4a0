"""The one-shot sweep: results written per point, resumable, files that hold what they claim."""

import csv
import json

import matplotlib.image
import pytest

from prunekit.cli import main
from prunekit.errors import ConfigError
from prunekit.study import write_report
from prunekit.study import SweepConfig, run_sweep, sweep_config_dict
from prunekit.training import TrainConfig

CONFIG = SweepConfig(model="lenet300", methods=("weight", "unit"), sparsities=(0, 50, 90),
                     train=TrainConfig(epochs=0.25, batch_size=128))


class Interrupt(Exception):
    pass


def test_interrupted_sweep_resumes_without_recomputing(tmp_path, mnist_dir):
    seen = []

    def stop_after_two(point):
        seen.append(point)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(CONFIG, tmp_path, data_dir=str(mnist_dir), progress=False, on_point=stop_after_two)
    saved = {p.name: p.read_text() for p in (tmp_path / "points").iterdir()}
    assert len(saved) == 2
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert len(rows) == 2  # the tables were already written for the finished points

    resumed = []
    result = run_sweep(CONFIG, tmp_path, data_dir=str(mnist_dir), progress=False, on_point=resumed.append)
    assert len(resumed) == 4 and result.points_run == 4
    assert {(p["method"], p["sparsity_target"]) for p in resumed}.isdisjoint(
        {(p["method"], p["sparsity_target"]) for p in seen})
    assert {p.name: p.read_text() for p in (tmp_path / "points").iterdir() if p.name in saved} == saved
    assert len(list((tmp_path / "baselines").iterdir())) == 1  # the baseline was trained once

    again = run_sweep(CONFIG, tmp_path, data_dir=str(mnist_dir), progress=False)
    assert again.points_run == 0 and len(again.points) == 6


def test_results_csv_json_png_and_report_hold_what_they_claim(tmp_path, baseline):
    config = SweepConfig(methods=("weight", "unit"), sparsities=(0, 50, 90))
    result = run_sweep(config, tmp_path, checkpoint=str(baseline), progress=False)
    baseline_acc = result.baseline.metrics["test_accuracy"]
    write_report(tmp_path, baseline_accuracy=baseline_acc, config=sweep_config_dict(result.config), timing="t")

    points = json.loads((tmp_path / "results.json").read_text())
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert len(points) == len(rows) == 6
    for row, point in zip(rows, points):
        assert row["method"] == point["method"] and float(row["test_accuracy"]) == pytest.approx(point["test_accuracy"])
        assert float(row["sparsity_actual"]) == pytest.approx(point["sparsity_target"], abs=0.5)
    by_key = {(p["method"], p["sparsity_target"]): p for p in points}
    assert by_key[("weight", 0.0)]["test_accuracy"] == pytest.approx(baseline_acc)
    hidden, output = 784 * 300 + 300 * 100, 100 * 10
    assert by_key[("weight", 90.0)]["params_nonzero"] == round(0.1 * hidden) + output  # the output layer is whole
    assert by_key[("weight", 90.0)]["weight_sparsity_all"] == pytest.approx(100 * 0.9 * hidden / (hidden + output))
    assert by_key[("unit", 50.0)]["units_live"] == 150 + 50 + 10  # the classifier keeps its 10 units
    assert by_key[("unit", 90.0)]["test_accuracy"] < by_key[("weight", 90.0)]["test_accuracy"]

    weight_bytes = [by_key[("weight", k)]["file_bytes"] for k in (0.0, 50.0, 90.0)]
    assert weight_bytes[0] > weight_bytes[1] > weight_bytes[2]  # the real file shrinks with sparsity
    assert by_key[("unit", 90.0)]["file_bytes"] < by_key[("unit", 50.0)]["file_bytes"]
    assert all(float(row["latency_b256_ratio"]) > 0 for row in rows)
    for name in ("accuracy_vs_latency.png", "accuracy_vs_file_size.png"):
        assert matplotlib.image.imread(tmp_path / name).shape[0] > 300
        assert f"]({name})" in (tmp_path / "REPORT.md").read_text()

    image = matplotlib.image.imread(tmp_path / "accuracy_vs_sparsity.png")
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 500
    report = (tmp_path / "REPORT.md").read_text()
    assert "![accuracy vs sparsity](accuracy_vs_sparsity.png)" in report
    assert f"{100 * baseline_acc:.2f}%" in report and report.count("| oneshot |") == 6
    assert "## Findings" in report and "**weight pruning (oneshot, layer-wise)** stays within" in report
    assert "measured over the **pruned layers**" in report and "the output layer is left whole" in report
    assert "actual % (pruned layers) | weights zero % (all layers)" in report


def test_sweep_of_a_checkpoint_uses_its_model_and_dataset(tmp_path, fashion_dir, capsys):
    from prunekit.study import train_model

    train_model("lenet5", dataset="fashion-mnist", data_dir=fashion_dir, config=TrainConfig(epochs=0.05),
                out=tmp_path / "base", progress=False)
    code = main(["sweep", "--checkpoint", str(tmp_path / "base"), "--methods", "unit", "--sparsities", "0",
                 "--out", str(tmp_path / "sweep"), "--data-dir", str(fashion_dir), "--quiet", "--no-measure"])
    assert code == 0
    assert "baseline lenet5 on fashion-mnist" in capsys.readouterr().out
    report = (tmp_path / "sweep" / "REPORT.md").read_text()
    assert "(lenet5, fashion-mnist)" in report
    dense = json.loads((tmp_path / "base" / "metrics.json").read_text())["test_accuracy"]
    point = json.loads((tmp_path / "sweep" / "results.json").read_text())[0]
    assert point["test_accuracy"] == pytest.approx(dense)  # evaluated on Fashion-MNIST, like the baseline
    code = main(["sweep", "--checkpoint", str(tmp_path / "base"), "--model", "mlp", "--out", str(tmp_path / "s2"),
                 "--quiet"])
    assert code == 2 and "names model 'mlp' but the checkpoint" in capsys.readouterr().err


def test_close_sparsities_are_two_points_not_one(tmp_path, baseline):
    config = SweepConfig(methods=("weight",), sparsities=(50, 50.0000001))
    result = run_sweep(config, tmp_path, checkpoint=str(baseline), progress=False, measure=False)
    assert len(result.points) == 2 and len(list((tmp_path / "points").iterdir())) == 2


def test_cli_sweep_uses_a_given_checkpoint_and_prints_timing(tmp_path, baseline, mnist_dir, capsys):
    code = main(["sweep", "--checkpoint", str(baseline), "--methods", "weight", "--sparsities", "0,80",
                 "--out", str(tmp_path / "sweep"), "--data-dir", str(mnist_dir), "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "2 prune+evaluate points in" in out and "one dense pass over the test set takes" in out
    assert not (tmp_path / "sweep" / "baselines").exists()
    assert len(json.loads((tmp_path / "sweep" / "results.json").read_text())) == 2


@pytest.mark.parametrize("kwargs, message", [
    ({"methods": ("weights",)}, "unknown pruning method 'weights'"),
    ({"scope": "net"}, "unknown scope 'net'"),
    ({"sparsities": (50, 100)}, r"sparsity must be a percentage in \[0, 100\)"),
])
def test_bad_sweep_settings_fail_before_any_training(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SweepConfig(**kwargs)
