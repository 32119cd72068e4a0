"""Sweeps as jobs: the processes executor gives the local executor's points bit for bit; replicates
(--seeds) give mean, std and n; bad executor settings and failing jobs give clear errors."""

import csv
import json
from dataclasses import replace

import pytest
import torch

from prunekit.cli import main
from prunekit.errors import ConfigError, JobError
from prunekit.study import SweepConfig, make_executor, run_sweep
from prunekit.study.executors import ProcessExecutor
from prunekit.study.jobs import BaselineJob, SweepJob, run_job, train_baseline

from sweeps import EXECUTOR_SWEEP as CONFIG, comparable


def sweep(config, out, executor, **kwargs):
    return run_sweep(config, out, progress=False, measure=False, executor=executor, **kwargs)


def test_processes_executor_gives_the_local_points_bit_for_bit(local_points, baseline, mnist_dir, tmp_path):
    threads = torch.get_num_threads()
    result = sweep(CONFIG, tmp_path, make_executor("processes", workers=2, cpus_per_job=1),
                   checkpoint=str(baseline), data_dir=str(mnist_dir))
    assert torch.get_num_threads() == threads  # the driver's threads are left as they were
    assert result.parallel and "2 workers x 1 thread" in result.executor
    assert comparable(result.points) == comparable(local_points)
    again = sweep(CONFIG, tmp_path, make_executor("processes", workers=2), checkpoint=str(baseline),
                  data_dir=str(mnist_dir))
    assert again.points_run == 0  # every point was stored by the workers


def test_seeds_train_a_baseline_each_and_report_mean_std_and_n(tmp_path, mnist_dir, capsys):
    args = ["sweep", "--model", "lenet300", "--epochs", "0.05", "--methods", "weight,unit", "--sparsities", "0,90",
            "--seeds", "0,1", "--no-measure", "--quiet", "--data-dir", str(mnist_dir), "--out", str(tmp_path)]
    assert main(args) == 0
    assert "(mean of 2 seeds)" in capsys.readouterr().out
    assert len(list((tmp_path / "baselines").iterdir())) == 2
    points = json.loads((tmp_path / "results.json").read_text())
    assert sorted({p["seed"] for p in points}) == [0, 1] and len(points) == 8
    by = {(p["method"], p["sparsity_target"], p["seed"]): p["test_accuracy"] for p in points}
    assert by[("weight", 0.0, 0)] != by[("weight", 0.0, 1)]  # two baselines, not one
    rows = {(r["method"], float(r["sparsity_target"])): r for r in csv.DictReader((tmp_path / "summary.csv").open())}
    unit90 = rows[("unit", 90.0)]
    values = [by[("unit", 90.0, 0)], by[("unit", 90.0, 1)]]
    assert int(unit90["n"]) == 2
    assert float(unit90["test_accuracy"]) == pytest.approx(sum(values) / 2)
    assert float(unit90["test_accuracy_std"]) == pytest.approx(abs(values[0] - values[1]) / 2 ** 0.5)
    report = (tmp_path / "REPORT.md").read_text()
    assert "mean over 2 seeds" in report and "(n=2 seeds)" in report and "beyond noise" in report
    assert main(args) == 0
    assert "0 prune+evaluate points" in capsys.readouterr().out  # a rerun recomputes nothing


def test_replicate_seeds_change_the_recovery_seed_too():
    config = SweepConfig(seeds=(3,)).for_seed(3)
    assert config.train.seed == 3 and config.recovery.finetune.seed == 3 and config.recovery.lottery.seed == 3


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="threads"), "unknown executor 'threads'"),
    (dict(name="processes", workers=0), "workers must be a positive integer"),
    (dict(name="processes", cpus_per_job=-1), "cpus per job must be a positive integer"),
    (dict(name="processes", gpus_per_job=1), "--gpus-per-job and --ray-address are for --executor ray"),
    (dict(name="local", workers=2), "the local executor runs one job at a time"),
])
def test_bad_executor_settings_are_clear_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        make_executor(**kwargs)


def test_seeds_with_a_checkpoint_and_bad_seeds_are_clear_errors(baseline, tmp_path, capsys):
    with pytest.raises(ConfigError, match="leave --seeds or --checkpoint out"):
        run_sweep(SweepConfig(seeds=(0, 1)), tmp_path, checkpoint=str(baseline), progress=False)
    with pytest.raises(ConfigError, match="seeds must be non-negative integers"):
        SweepConfig(seeds=(-1,))
    with pytest.raises(SystemExit):
        main(["sweep", "--seeds", "0,x", "--out", str(tmp_path)])
    assert "expected comma-separated non-negative integers such as 0,1,2, got '0,x'" in capsys.readouterr().err


def test_a_job_failing_in_a_worker_names_the_job_and_says_how_to_resume():
    with ProcessExecutor(workers=1) as executor, pytest.raises(JobError) as caught:
        list(executor.run(int, ["not a number"]))
    assert "sweep job not a number failed on a worker process: ValueError" in str(caught.value)
    assert "rerun the same command to resume" in str(caught.value)


def test_a_worker_that_cannot_see_the_sweep_folder_says_so(tmp_path, baseline):
    job = SweepJob(CONFIG, str(tmp_path / "elsewhere"), str(tmp_path / "no-baseline"), "b0", "oneshot", "weight",
                   (50.0,), 1)
    with pytest.raises(JobError, match="cannot see the baseline .*no-baseline.*must be at the same paths"):
        run_job(job)
    job = replace(job, out=str(tmp_path), baseline=str(baseline), data_dir=str(tmp_path / "no-data"))
    with pytest.raises(JobError, match="cannot see the data folder .*no-data"):
        run_job(job)
    job = BaselineJob(CONFIG, str(tmp_path / "nowhere" / "baselines" / "x"))
    with pytest.raises(JobError, match="cannot see the sweep folder .*nowhere"):
        train_baseline(job)


def test_an_executor_given_to_run_sweep_is_entered_once(monkeypatch):
    opened = []
    executor = make_executor("processes", workers=1)
    monkeypatch.setattr(ProcessExecutor, "_open", lambda self: opened.append(self))
    monkeypatch.setattr(ProcessExecutor, "_close", lambda self: opened.remove(self))
    with executor:
        with executor:  # what run_sweep does with an executor the caller opened
            assert opened == [executor]
        assert opened == [executor]  # still open for the caller
    assert opened == []


def test_replicates_and_a_single_run_in_one_folder_keep_apart(tmp_path):
    from prunekit.study.results import ResultStore

    point = {"schedule": "oneshot", "method": "weight", "scope": "layer", "sparsity_target": 50.0}
    ResultStore(tmp_path, "b0", seed=0).put(point)
    assert ResultStore(tmp_path, "b0").all() == []  # an unseeded sweep of the same baseline id sees no replicate
    assert [p["seed"] for p in ResultStore(tmp_path, "b0", seed=0).all()] == [0]
    ResultStore(tmp_path, "b0").put(point)
    assert [p.get("seed") for p in ResultStore(tmp_path, "b0").all()] == [None]


def test_two_names_of_one_series_make_one_job(baseline, mnist_dir, tmp_path):
    from prunekit.schedules import Recovery
    from prunekit.study.jobs import build_context, load_baseline, plan_jobs
    from prunekit.training import DistillConfig
    from prunekit import load_dataset

    config = replace(CONFIG, schedules=("iterative", "iterative+distill"),
                     recovery=replace(CONFIG.recovery, distill=DistillConfig()))
    assert isinstance(config.recovery, Recovery)
    config = config.with_checkpoint(load_baseline(config, baseline).config, str(baseline))
    ctx = build_context(config, load_baseline(config, baseline), "b0", load_dataset("mnist", mnist_dir), tmp_path)
    jobs = plan_jobs(ctx, config, baseline=baseline)
    assert [(job.schedule, job.method) for job in jobs] == [("iterative", "weight"), ("iterative", "unit")]
