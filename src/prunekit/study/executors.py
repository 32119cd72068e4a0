"""Where a sweep's jobs run: in this process, in worker processes on this machine, or as Ray tasks.

Every executor is a context manager whose :meth:`~Executor.run` takes a function and jobs and yields
``(job, result)`` as jobs finish. The jobs (:mod:`.jobs`) write their points into the sweep folder
themselves, so what finished is kept whichever executor ran it, and a rerun skips it.

* ``local``: one job after another in this process (the default); ``cpus_per_job`` sets its torch threads.
* ``processes``: ``workers`` processes of this machine (started with ``spawn``), ``cpus_per_job`` torch
  threads each. The workers exit when the process that started them dies, even by SIGKILL.
* ``ray``: Ray tasks on a Ray cluster (``address``: ``host:port``, ``auto``, or none: ``$RAY_ADDRESS`` or
  a new single-machine cluster), ``cpus_per_job`` CPUs and ``gpus_per_job`` GPUs each, at most ``workers``
  at a time (default: as many as the cluster fits). A task whose worker dies is retried (Ray's
  ``max_retries``); it skips the points its first attempt stored. A cluster that does not answer within
  ``connect_timeout`` seconds is an error (Ray itself would retry for about 14 minutes).

A job that fails on a worker stops the sweep with a :class:`~prunekit.errors.JobError` naming the job.
On the processes executor, SIGTERM does too, its workers stopped at once (when the executor was opened in
the main thread, and the caller has no SIGTERM handler of its own); the points stored stay. (On the ray
executor, Ray's core worker handles SIGTERM: the driver exits at once, and the cluster drops its tasks.)

Example:
    >>> with make_executor("local") as executor:
    ...     sorted(result for _, result in executor.run(abs, [-2, 1]))
    [1, 2]
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any


from ..errors import ConfigError, JobError
from .executor_base import Executor, job_failed, threads_text
from .ray_cluster import RAY_CONNECT_TIMEOUT, RAY_RETRIES, RayExecutor, import_ray  # noqa: F401  (re-exported)
from .workers import start_worker, watch_driver  # noqa: F401  (watch_driver re-exported)

EXECUTORS = ("local", "processes", "ray")
"""The executor names ``prunekit sweep --executor`` takes."""

STOPPED = ("the sweep was stopped by SIGTERM; the points finished so far are kept, and rerunning the same "
           "command resumes it")


class ProcessExecutor(Executor):
    """Runs jobs in ``workers`` worker processes of this machine, ``cpus_per_job`` torch threads each."""

    name = "processes"
    in_process = False

    def __init__(self, workers: int | None = None, cpus_per_job: int | None = None):
        self.cpus_per_job = cpus_per_job = cpus_per_job or 1
        self.workers = workers or max(1, (os.cpu_count() or 1) // cpus_per_job)
        self._pool: ProcessPoolExecutor | None = None
        self._sigterm: Any = None  # the SIGTERM handler to restore, while ours is installed
        self._stopping = False

    def _open(self) -> None:
        self._stopping = False
        self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=start_worker, initargs=(self.cpus_per_job, os.getpid()))
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            self._sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        """SIGTERM: raise a JobError in the main thread, so that the with block closes the pool."""
        if not self._stopping:  # a second SIGTERM does not interrupt the shutdown
            self._stopping = True
            raise JobError(STOPPED)

    def _close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            if self._stopping:  # end the running jobs now rather than wait for them
                for process in list((pool._processes or {}).values()):  # no public way before Python 3.14
                    process.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
        if self._sigterm is not None:
            signal.signal(signal.SIGTERM, self._sigterm)
            self._sigterm = None

    def run(self, fn, jobs):
        if self._pool is None:
            raise RuntimeError("use the executor in a with block")
        futures = {self._pool.submit(fn, job): job for job in jobs}
        try:
            while futures:
                done, _ = wait(futures, return_when=FIRST_COMPLETED)
                for future in done:
                    job = futures.pop(future)
                    try:
                        result = future.result()
                    except Exception as exc:
                        raise job_failed(job, "a worker process", exc) from exc
                    yield job, result
        finally:
            for future in futures:
                future.cancel()

    def describe(self) -> str:
        return f"the processes executor ({self.workers} workers x {threads_text(self.cpus_per_job)})"


def make_executor(name: str = "local", *, ray_address: str | None = None, workers: int | None = None,
                  cpus_per_job: int | None = None, gpus_per_job: float = 0,
                  connect_timeout: float | None = None) -> Executor:
    """The executor called ``name`` (one of :data:`EXECUTORS`), checked.

    ``cpus_per_job`` is the torch threads of every job (and the CPUs a Ray task reserves); default: 1 in
    workers, torch's own choice in this process. Jobs run with equal threads give identical points on
    every executor; with other thread counts, float sums may differ in their last bits.
    ``connect_timeout``: seconds the ray executor waits for the cluster at ``ray_address`` (default
    :data:`~.ray_cluster.RAY_CONNECT_TIMEOUT`).

    Raises:
        ConfigError: for an unknown name, a worker or CPU count below 1, GPUs, a Ray address or a connect
            timeout with an executor other than ``ray``, a timeout not above 0, or ``ray`` when Ray is not
            installed.
    """
    if name not in EXECUTORS:
        raise ConfigError(f"unknown executor {name!r}; choose from {', '.join(EXECUTORS)}")
    for what, value in (("workers", workers), ("cpus per job", cpus_per_job)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"{what} must be a positive integer, got {value!r}")
    if not (gpus_per_job >= 0):
        raise ConfigError(f"GPUs per job must be >= 0, got {gpus_per_job!r}")
    if name != "ray" and (gpus_per_job or ray_address):
        raise ConfigError(f"--gpus-per-job and --ray-address are for --executor ray, not {name!r} (the local and "
                          "processes executors run where --device says)")
    if connect_timeout is not None:
        if name != "ray":
            raise ConfigError(f"--ray-timeout is for --executor ray, not {name!r}")
        if isinstance(connect_timeout, bool) or not isinstance(connect_timeout, (int, float)) or \
                not connect_timeout > 0:
            raise ConfigError(f"the Ray connect timeout must be a number of seconds above 0, got {connect_timeout!r}")
    if name == "local":
        if workers not in (None, 1):
            raise ConfigError(f"the local executor runs one job at a time; got {workers} workers "
                              "(use --executor processes or ray)")
        return Executor(cpus_per_job)
    if name == "processes":
        return ProcessExecutor(workers, cpus_per_job)
    import_ray()
    return RayExecutor(ray_address, workers, cpus_per_job, gpus_per_job, connect_timeout)
