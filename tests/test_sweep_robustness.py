"""A sweep that goes wrong around its jobs: its driver killed (the processes executor's workers exit too), a
Ray address where nothing answers (a bounded wait, then a clear error), a second sweep with other settings
into the same folder (the first one's points are kept apart, never overwritten nor reused), and a mistyped
--data-dir (an error, not a fall-back to $PRUNEKIT_DATA)."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from prunekit.cli import main
from prunekit.errors import ConfigError, DataError
from prunekit.schedules import Recovery
from prunekit.study import SweepConfig, make_executor, run_sweep
from prunekit.training import TrainConfig

from sweeps import comparable

PRUNEKIT = str(Path(sys.executable).with_name("prunekit"))
TINY = TrainConfig(epochs=0.05, batch_size=256, lr=0.02)


# ----------------------------------------------------------------------------- orphan workers

def _workers(driver: int) -> list[int]:
    """The live pool workers (``spawn_main`` processes) whose parent is ``driver``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            state, ppid = (proc / "stat").read_text().rpartition(")")[2].split()[:2]
            command = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if int(ppid) == driver and state != "Z" and b"spawn_main" in command:
            found.append(int(proc.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _wait(ready, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.1)


def _running_workers(driver: subprocess.Popen, count: int = 2) -> list[int]:
    """The driver's ``count`` workers, once each has loaded torch (it is past start-up, running or idle)."""
    def ready() -> bool:
        assert driver.poll() is None, driver.communicate()[0]
        workers = _workers(driver.pid)
        return len(workers) == count and all(b"libtorch" in Path(f"/proc/{pid}/maps").read_bytes() for pid in workers)

    _wait(ready, 120, f"{count} workers of the sweep")
    time.sleep(1)  # past the worker initializer
    return _workers(driver.pid)


def _sweep_command(baseline, mnist_dir, out) -> list[str]:
    return [PRUNEKIT, "sweep", "--checkpoint", str(baseline), "--schedules", "finetune", "--finetune-epochs", "0.5",
            "--methods", "weight,unit", "--sparsities", "30,50,70,90", "--no-measure", "--quiet", "--data-dir",
            str(mnist_dir), "--executor", "processes", "--workers", "2", "--out", str(out)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process table in /proc")
def test_workers_exit_when_the_driver_is_killed(baseline, mnist_dir, tmp_path):
    driver = subprocess.Popen(_sweep_command(baseline, mnist_dir, tmp_path / "sweep"), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    try:
        workers = _running_workers(driver)
    finally:
        driver.kill()
        driver.wait()
    _wait(lambda: not any(_alive(pid) for pid in workers), 10, f"the workers {workers} to exit")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process table in /proc")
def test_sigterm_stops_the_sweep_and_its_workers_and_a_rerun_resumes(baseline, mnist_dir, tmp_path):
    command = _sweep_command(baseline, mnist_dir, tmp_path / "sweep")
    driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        workers = _running_workers(driver)
        driver.send_signal(signal.SIGTERM)
        output, _ = driver.communicate(timeout=30)
    finally:
        driver.kill()
    assert driver.returncode == 2, output
    assert "stopped by SIGTERM" in output and "resumes it" in output
    _wait(lambda: not any(_alive(pid) for pid in workers), 10, f"the workers {workers} to exit")
    points = tmp_path / "sweep" / "points"
    kept = {p.name: p.read_bytes() for p in points.glob("[!.]*.json")}
    assert len(kept) < 8, "the sweep finished before SIGTERM: make its jobs longer"
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"{8 - len(kept)} points (prune, recover, evaluate)" in rerun.stdout
    assert {name: (points / name).read_bytes() for name in kept} == kept  # finished points were not redone


def test_a_worker_whose_driver_died_exits_without_the_kernel_signal_too():
    # the portable fallback alone: a daemon thread that watches the parent's pid
    worker = ("import sys, time; from prunekit.study.executors import watch_driver; "
              "watch_driver(int(sys.argv[1]), every=0.2); print('watching', flush=True); time.sleep(60)")
    driver = ("import os, subprocess, sys; worker = subprocess.Popen([sys.executable, '-c', sys.argv[1], "
              "str(os.getpid())], stdout=subprocess.PIPE); assert worker.stdout.readline() == b'watching\\n'; "
              "print(worker.pid)")
    launched = subprocess.run([sys.executable, "-c", driver, worker], capture_output=True, text=True, timeout=60)
    assert launched.returncode == 0, launched.stderr
    orphan = int(launched.stdout)
    _wait(lambda: not _alive(orphan), 10, "the orphaned worker to exit")
    late = subprocess.run([sys.executable, "-c", "from prunekit.study.executors import watch_driver; "
                           "watch_driver(1); import time; time.sleep(60)"], capture_output=True, text=True, timeout=60)
    assert (late.returncode, late.stderr) == (1, "")  # its driver was gone before it started watching


# ----------------------------------------------------------------------------- unreachable Ray cluster

def test_an_unreachable_ray_address_fails_within_the_timeout_with_a_clear_error(mnist_dir, tmp_path):
    pytest.importorskip("ray", reason="the ray extra is not installed")
    command = [PRUNEKIT, "sweep", "--model", "lenet300", "--epochs", "0.05", "--methods", "weight", "--sparsities",
               "50", "--quiet", "--data-dir", str(mnist_dir), "--executor", "ray", "--ray-address", "127.0.0.1:1",
               "--ray-timeout", "3", "--out", str(tmp_path / "sweep")]
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    assert result.returncode == 2, result.stdout + result.stderr
    assert time.monotonic() - started < 60  # imports and data included; Ray alone retries for ~14 minutes
    message = result.stderr
    assert "no Ray cluster answered at 127.0.0.1:1 within 3 s" in message
    assert "nothing accepts connections there" in message and "--ray-timeout SECONDS" in message


@pytest.mark.parametrize("kwargs, text", [
    (dict(name="processes", connect_timeout=5), "--ray-timeout is for --executor ray, not 'processes'"),
    (dict(name="ray", connect_timeout=0), "connect timeout must be a number of seconds above 0"),
    (dict(name="ray", connect_timeout="5"), "connect timeout must be a number of seconds above 0"),
])
def test_bad_ray_timeouts_are_clear_errors(kwargs, text):
    if kwargs["name"] == "ray":
        pytest.importorskip("ray", reason="the ray extra is not installed")
    with pytest.raises(ConfigError, match=text):
        make_executor(**kwargs)


# ----------------------------------------------------------------------------- other settings, same folder

ONESHOT = SweepConfig(methods=("weight",), sparsities=(50, 90), recovery=Recovery(finetune=TINY))


def _sweep(config, out, baseline, mnist_dir):
    return run_sweep(config, out, checkpoint=str(baseline), data_dir=str(mnist_dir), progress=False, measure=False)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.glob("[!.]*.json")} if folder.is_dir() else {}


@pytest.mark.parametrize("change", [
    dict(include_output=True),
    dict(layers=("fc1",)),
    dict(reconstruct=True, calibration_batches=2),
    dict(schedules=("finetune",), recovery=Recovery(finetune=replace(TINY, epochs=0.1))),
], ids=["include-output", "layers", "reconstruct", "finetune-epochs"])
def test_other_settings_into_the_same_folder_keep_the_first_points_apart(baseline, mnist_dir, tmp_path, change):
    first_config = replace(ONESHOT, schedules=change.get("schedules", ONESHOT.schedules))
    first = _sweep(first_config, tmp_path, baseline, mnist_dir)
    stored = _files(tmp_path / "points")
    assert first.points_run == 2 and len(stored) == 2

    second = _sweep(replace(first_config, **change), tmp_path, baseline, mnist_dir)
    assert second.points_run == 2  # recomputed, nothing of the first settings reused
    assert {p["config_id"] for p in second.points}.isdisjoint({p["config_id"] for p in first.points})
    assert json.loads((tmp_path / "results.json").read_text()) == second.points  # the tables hold its own only
    apart = _files(tmp_path / "other-settings")
    assert sorted(apart.values()) == sorted(stored.values())  # the first points, byte for byte

    again = _sweep(first_config, tmp_path, baseline, mnist_dir)
    assert again.points_run == 0  # its points came back
    assert comparable(again.points) == comparable(first.points) and _files(tmp_path / "points") == stored
    assert len(_files(tmp_path / "other-settings")) == 2  # now the second sweep's


def test_more_sparsities_methods_and_schedules_extend_a_folder(baseline, mnist_dir, tmp_path):
    assert _sweep(replace(ONESHOT, sparsities=(50,)), tmp_path, baseline, mnist_dir).points_run == 1
    wider = replace(ONESHOT, methods=("weight", "unit"), schedules=("oneshot", "finetune"))
    result = _sweep(wider, tmp_path, baseline, mnist_dir)
    assert result.points_run == 7 and len(result.points) == 8
    assert not (tmp_path / "other-settings").exists()


def test_more_seeds_extend_a_folder(mnist_dir, tmp_path):
    config = SweepConfig(model="lenet300", methods=("weight",), sparsities=(50,), train=TINY, seeds=(0,))
    run = dict(data_dir=str(mnist_dir), progress=False, measure=False)
    assert run_sweep(config, tmp_path, **run).points_run == 1
    result = run_sweep(replace(config, seeds=(0, 1)), tmp_path, **run)
    assert result.points_run == 1 and sorted(p["seed"] for p in result.points) == [0, 1]
    assert not (tmp_path / "other-settings").exists()


# ----------------------------------------------------------------------------- a mistyped --data-dir

def test_a_data_dir_that_is_not_a_folder_is_an_error_not_a_fall_back(tmp_path, capsys):
    from prunekit.data import load_dataset

    assert os.environ["PRUNEKIT_DATA"]  # MNIST is there: a fall-back would load it
    typo = tmp_path / "mnsit"
    with pytest.raises(DataError, match=rf"data_dir \(--data-dir\) is {typo}, which does not exist"):
        load_dataset("mnist", typo, progress=False)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(DataError, match=r"a-file, which is not a folder"):
        load_dataset("mnist", tmp_path / "a-file", progress=False)
    assert main(["sweep", "--model", "lenet300", "--sparsities", "50", "--data-dir", str(typo), "--out",
                 str(tmp_path / "sweep"), "--quiet"]) == 2
    assert f"{typo}, which does not exist" in capsys.readouterr().err
