"""The ray executor on a real Ray cluster of this machine: a head and a worker node started with
``ray start`` on 127.0.0.1. The sweep's points equal the local executor's bit for bit, and a worker
killed mid-sweep loses nothing: its job is retried, no finished point is recomputed, and a rerun
computes nothing."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sweeps import EXECUTOR_SWEEP as CONFIG, comparable, stored_points
from prunekit.study import make_executor, run_sweep

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'prunekit[ray]')")
pytestmark = [pytest.mark.ray, pytest.mark.xdist_group("ray")]  # one Ray cluster at a time

RAY = str(Path(sys.executable).with_name("ray"))
NODE = ["--block", "--node-ip-address=127.0.0.1", "--num-cpus=1", "--object-store-memory=80000000"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """``host:port`` of a Ray cluster of two nodes (a head and a worker, one CPU each) on 127.0.0.1.

    Token authentication is off: the cluster listens on this machine only, for this test module.
    """
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    saved = {k: os.environ.get(k) for k in ("RAY_USAGE_STATS_ENABLED", "RAY_AUTH_MODE")}
    os.environ.update({k: env[k] for k in saved})
    port = _free_port()
    address = f"127.0.0.1:{port}"
    logs = tmp_path_factory.mktemp("ray-logs")
    nodes = [subprocess.Popen([RAY, "start", "--head", f"--port={port}", "--include-dashboard=false",
                               "--disable-usage-stats", *NODE], env=env, start_new_session=True,
                              stdout=(logs / "head.log").open("w"), stderr=subprocess.STDOUT)]
    try:
        _wait(lambda: _connects(port), "the Ray head to listen", logs)
        nodes.append(subprocess.Popen([RAY, "start", f"--address={address}", *NODE], env=env, start_new_session=True,
                                      stdout=(logs / "worker.log").open("w"), stderr=subprocess.STDOUT))
        ray.init(address=address, log_to_driver=False)
        try:
            _wait(lambda: ray.cluster_resources().get("CPU", 0) >= 2, "the worker node to join", logs)
        finally:
            ray.shutdown()
        yield address
    finally:
        for node in nodes:
            os.killpg(node.pid, signal.SIGKILL)
            node.wait()
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


def _wait(ready, what: str, logs: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}; logs in {logs}")
        time.sleep(0.2)


def test_a_ray_sweep_equals_the_local_one_bit_for_bit(cluster, local_points, baseline, mnist_dir, tmp_path):
    result = run_sweep(CONFIG, tmp_path, checkpoint=str(baseline), data_dir=str(mnist_dir), progress=False,
                       measure=False, executor=make_executor("ray", ray_address=cluster, cpus_per_job=1))
    assert result.parallel and "cluster of 2 CPUs" in result.executor
    assert comparable(result.points) == comparable(local_points)
    assert not ray.is_initialized()  # the driver disconnected


def test_a_worker_killed_mid_sweep_loses_no_finished_point(cluster, baseline, mnist_dir, tmp_path):
    out = tmp_path / "sweep"
    command = [str(Path(sys.executable).with_name("prunekit")), "sweep", "--checkpoint", str(baseline),
               "--schedules", "finetune", "--finetune-epochs", "0.1", "--methods", "weight,unit",
               "--sparsities", "30,50,70,90", "--no-measure", "--quiet", "--data-dir", str(mnist_dir),
               "--executor", "ray", "--ray-address", cluster, "--out", str(out)]
    driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    points = out / "points"
    _wait(lambda: points.is_dir() and stored_points(points) or driver.poll() is not None, "a first point", tmp_path)
    before = stored_points(points)
    killed = _kill_a_running_job()
    output, _ = driver.communicate(timeout=120)
    assert driver.returncode == 0, output
    assert killed, "no Ray worker was running a job to kill"
    after = stored_points(points)
    assert len(after) == 8
    assert {name: after[name] for name in before} == before  # finished points were not recomputed
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "0 points (prune, recover, evaluate)" in rerun.stdout
    assert stored_points(points) == after


def _kill_a_running_job(seconds: float = 30) -> bool:
    """SIGKILL one Ray worker process while it runs a sweep job (its title is ``ray::run_job``)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for proc in Path("/proc").iterdir():
            try:
                title = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if proc.name.isdigit() and title.startswith(b"ray::run_job"):
                os.kill(int(proc.name), signal.SIGKILL)
                return True
        time.sleep(0.05)
    return False


def test_without_an_address_a_new_cluster_is_started_never_a_stale_one(monkeypatch):
    # a `ray start` cluster that died leaves its address in /tmp/ray; ray.init() alone would try to join it
    calls = []
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setattr(ray, "shutdown", lambda: calls.append("shutdown"))
    with make_executor("ray"):
        pass
    with make_executor("ray", ray_address="10.0.0.1:6379"):
        pass
    assert calls[0]["address"] == "local" and calls[1] == "shutdown"
    assert calls[2]["address"] == "10.0.0.1:6379" and calls[3] == "shutdown"
