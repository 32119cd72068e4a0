"""The one-shot sweep: results written per point, resumable, files that hold what they claim."""

import csv
import json

import matplotlib.image
import pytest

from prunekit.cli import main
from prunekit.errors import ConfigError
from prunekit.report import write_report
from prunekit.sweep import SweepConfig, run_sweep, sweep_config_dict
from prunekit.train import TrainConfig

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


def test_results_csv_json_png_and_report_hold_what_they_claim(tmp_path, mnist_dir):
    result = run_sweep(CONFIG, tmp_path, data_dir=str(mnist_dir), progress=False)
    baseline_acc = result.baseline.metrics["test_accuracy"]
    write_report(tmp_path, baseline_accuracy=baseline_acc, config=sweep_config_dict(CONFIG), timing="t")

    points = json.loads((tmp_path / "results.json").read_text())
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert len(points) == len(rows) == 6
    for row, point in zip(rows, points):
        assert row["method"] == point["method"] and float(row["test_accuracy"]) == pytest.approx(point["test_accuracy"])
        assert float(row["sparsity_actual"]) == pytest.approx(point["sparsity_target"], abs=0.5)
    by_key = {(p["method"], p["sparsity_target"]): p for p in points}
    assert by_key[("weight", 0.0)]["test_accuracy"] == pytest.approx(baseline_acc)
    assert by_key[("weight", 90.0)]["params_nonzero"] == pytest.approx(0.1 * 266_200, abs=3)
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


def test_cli_sweep_uses_a_given_checkpoint_and_prints_timing(tmp_path, mnist_dir, capsys):
    assert main(["train", "--model", "lenet300", "--epochs", "0.2", "--out", str(tmp_path / "base"),
                 "--data-dir", str(mnist_dir), "--quiet"]) == 0
    code = main(["sweep", "--checkpoint", str(tmp_path / "base"), "--methods", "weight", "--sparsities", "0,80",
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
