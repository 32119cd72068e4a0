"""The ray executor: a sweep's jobs as Ray tasks, and a bounded connection to a Ray cluster.

Example:
    >>> RayExecutor("127.0.0.1:6379", cpus_per_job=2).connect_timeout == RAY_CONNECT_TIMEOUT
    True
"""

from __future__ import annotations

import logging
import os
import socket
import threading

from ..errors import ConfigError
from .executor_base import Executor, job_failed

RAY_RETRIES = 3
"""Times Ray reruns a task whose worker died."""

RAY_CONNECT_TIMEOUT = 30.0
"""Seconds to wait for a Ray cluster given by address (``--ray-timeout``)."""


class RayExecutor(Executor):
    """Runs jobs as Ray tasks on a Ray cluster (see the module docstring)."""

    name = "ray"
    in_process = False

    def __init__(self, address: str | None = None, workers: int | None = None, cpus_per_job: int | None = None,
                 gpus_per_job: float = 0, connect_timeout: float | None = None):
        self.address, self.workers = address, workers
        self.cpus_per_job, self.gpus_per_job = cpus_per_job or 1, gpus_per_job
        self.connect_timeout = connect_timeout or RAY_CONNECT_TIMEOUT
        self._started = False

    def _open(self) -> None:
        ray = import_ray()
        if not ray.is_initialized():
            if self.address or os.environ.get("RAY_ADDRESS"):
                connect_ray(ray, self.address, self.connect_timeout)
            else:  # a new cluster of this machine only, for this sweep (never a stale one left in /tmp/ray)
                ray.init(address="local", include_dashboard=False, log_to_driver=False)
            self._started = True

    def _close(self) -> None:
        if self._started:
            import_ray().shutdown()
            self._started = False

    def run(self, fn, jobs):
        ray = import_ray()
        task = ray.remote(fn).options(num_cpus=self.cpus_per_job, num_gpus=self.gpus_per_job,
                                      max_retries=RAY_RETRIES, retry_exceptions=False)
        queue, running = list(jobs), {}
        limit = self.workers or max(1, len(queue))
        try:
            while queue or running:
                while queue and len(running) < limit:
                    job = queue.pop(0)
                    running[task.remote(job)] = job
                done, _ = ray.wait(list(running), num_returns=1)
                job = running.pop(done[0])
                try:
                    result = ray.get(done[0])
                except ray.exceptions.RayError as exc:
                    cause = exc.cause if isinstance(exc, ray.exceptions.RayTaskError) and exc.cause else exc
                    raise job_failed(job, "a Ray worker", cause) from exc
                yield job, result
        finally:
            for ref in running:
                ray.cancel(ref)

    def job_device(self, device: str | None) -> str | None:
        return device if device is not None or not self.gpus_per_job else "cuda"  # the GPU the task reserved

    def describe(self) -> str:
        ray = import_ray()
        cpus = ray.cluster_resources().get("CPU", 0) if ray.is_initialized() else 0
        limit = f", at most {self.workers} at a time" if self.workers else ""
        gpus = f" and {self.gpus_per_job:g} GPU" if self.gpus_per_job else ""
        return (f"the ray executor (tasks of {self.cpus_per_job} CPU{gpus} on a cluster of {cpus:g} CPUs{limit})")


def connect_ray(ray, address: str | None, timeout: float) -> None:
    """``ray.init(address=address)``, given up after ``timeout`` seconds with a ConfigError.

    Ray retries an address where no cluster answers for about 14 minutes, in native code that neither a
    signal nor a Ray setting read after ``import ray`` cuts short; so ``ray.init`` runs in a daemon thread,
    and an attempt given up on disconnects if it ever succeeds.
    """
    outcome: list[BaseException | None] = []
    abandoned = threading.Event()
    lock = threading.Lock()

    def connect() -> None:
        try:
            ray.init(address=address, log_to_driver=False)
            error = None
        except BaseException as exc:  # handed over to the caller's thread
            error = exc
        with lock:
            if not abandoned.is_set():
                outcome.append(error)
            elif error is None:
                ray.shutdown()

    def quiet(record: logging.LogRecord) -> bool:
        """Drop Ray's warning that it sets no SIGTERM handler off the main thread (its core worker ends the
        driver on SIGTERM all the same)."""
        return "SIGTERM handler is not set" not in record.getMessage()

    logger = logging.getLogger("ray._private.worker")
    logger.addFilter(quiet)
    try:
        thread = threading.Thread(target=connect, name="prunekit-ray-connect", daemon=True)
        thread.start()
        thread.join(timeout)
    finally:
        logger.removeFilter(quiet)
    with lock:
        if not outcome:
            abandoned.set()
    if abandoned.is_set():
        where = address or os.environ.get("RAY_ADDRESS", "")
        raise ConfigError(f"no Ray cluster answered at {where} within {timeout:g} s{_probe(where)}. Check the "
                          "address (`ray start --head` prints it; `ray status` on the head shows the cluster), that "
                          "the cluster is up and this machine reaches it, or wait longer with --ray-timeout SECONDS "
                          "(connect_timeout= in Python)")
    if outcome[0] is not None:
        raise outcome[0]


def _probe(address: str) -> str:
    """What a TCP connection to ``host:port`` finds, in a few words (nothing for another address)."""
    host, _, port = address.rpartition("://")[2].rpartition(":")
    if not (host and port.isdigit()):
        return ""
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError as exc:
        return f" (nothing accepts connections there: {exc})"
    return " (something accepts connections there, but no Ray GCS answered)"


def import_ray():
    """The ``ray`` module, or a clear error naming the extra that installs it."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("the ray executor needs Ray: pip install 'prunekit[ray]' (every node of the cluster "
                          "needs it, and prunekit, too)") from exc
    return ray
