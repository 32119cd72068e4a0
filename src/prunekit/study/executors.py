"""Where a sweep's jobs run: in this process, in worker processes on this machine, or as Ray tasks.

Every executor is a context manager whose :meth:`~Executor.run` takes a function and jobs and yields
``(job, result)`` as jobs finish. The jobs (:mod:`.jobs`) write their points into the sweep folder
themselves, so what finished is kept whichever executor ran it, and a rerun skips it.

* ``local``: one job after another in this process (the default); ``cpus_per_job`` sets its torch threads.
* ``processes``: ``workers`` processes of this machine (started with ``spawn``), ``cpus_per_job`` torch
  threads each.
* ``ray``: Ray tasks on a Ray cluster (``address``: ``host:port``, ``auto``, or none: ``$RAY_ADDRESS`` or
  a new single-machine cluster), ``cpus_per_job`` CPUs and ``gpus_per_job`` GPUs each, at most ``workers``
  at a time (default: as many as the cluster fits). A task whose worker dies is retried (Ray's
  ``max_retries``); it skips the points its first attempt stored.

A job that fails on a worker stops the sweep with a :class:`~prunekit.errors.JobError` naming the job.

Example:
    >>> with make_executor("local") as executor:
    ...     sorted(result for _, result in executor.run(abs, [-2, 1]))
    [1, 2]
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

import torch

from ..errors import ConfigError, JobError

EXECUTORS = ("local", "processes", "ray")
"""The executor names ``prunekit sweep --executor`` takes."""

RAY_RETRIES = 3
"""Times Ray reruns a task whose worker died."""


class Executor:
    """Runs jobs one after another in this process, with ``cpus_per_job`` torch threads (None: as they are)."""

    name = "local"
    in_process = True

    def __init__(self, cpus_per_job: int | None = None):
        self.cpus_per_job = cpus_per_job
        self._threads = 0

    def __enter__(self) -> Executor:
        self._depth = getattr(self, "_depth", 0) + 1  # re-entrant: run_sweep enters an executor it is given
        if self._depth == 1:
            self._open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._close()

    def _open(self) -> None:
        self._threads = torch.get_num_threads()
        if self.cpus_per_job:
            torch.set_num_threads(self.cpus_per_job)

    def _close(self) -> None:
        torch.set_num_threads(self._threads)

    def run(self, fn: Callable[[Any], Any], jobs: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        """Yield ``(job, fn(job))`` as the jobs finish."""
        for job in jobs:
            yield job, fn(job)

    def job_device(self, device: str | None) -> str | None:
        """Where jobs train and evaluate: ``device``, or where this executor's jobs reserve one."""
        return device

    def describe(self) -> str:
        """A few words on where jobs run, for reports."""
        return f"the local executor (one process, {_threads(torch.get_num_threads())})"


class ProcessExecutor(Executor):
    """Runs jobs in ``workers`` worker processes of this machine, ``cpus_per_job`` torch threads each."""

    name = "processes"
    in_process = False

    def __init__(self, workers: int | None = None, cpus_per_job: int | None = None):
        self.cpus_per_job = cpus_per_job = cpus_per_job or 1
        self.workers = workers or max(1, (os.cpu_count() or 1) // cpus_per_job)
        self._pool: ProcessPoolExecutor | None = None

    def _open(self) -> None:
        self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=torch.set_num_threads, initargs=(self.cpus_per_job,))

    def _close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

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
        return f"the processes executor ({self.workers} workers x {_threads(self.cpus_per_job)})"


class RayExecutor(Executor):
    """Runs jobs as Ray tasks on a Ray cluster (see the module docstring)."""

    name = "ray"
    in_process = False

    def __init__(self, address: str | None = None, workers: int | None = None, cpus_per_job: int | None = None,
                 gpus_per_job: float = 0):
        self.address, self.workers = address, workers
        self.cpus_per_job, self.gpus_per_job = cpus_per_job or 1, gpus_per_job
        self._started = False

    def _open(self) -> None:
        ray = import_ray()
        if not ray.is_initialized():
            if self.address or os.environ.get("RAY_ADDRESS"):
                ray.init(address=self.address, log_to_driver=False)
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


def make_executor(name: str = "local", *, ray_address: str | None = None, workers: int | None = None,
                  cpus_per_job: int | None = None, gpus_per_job: float = 0) -> Executor:
    """The executor called ``name`` (one of :data:`EXECUTORS`), checked.

    ``cpus_per_job`` is the torch threads of every job (and the CPUs a Ray task reserves); default: 1 in
    workers, torch's own choice in this process. Jobs run with equal threads give identical points on
    every executor; with other thread counts, float sums may differ in their last bits.

    Raises:
        ConfigError: for an unknown name, a worker or CPU count below 1, GPUs or a Ray address with an
            executor other than ``ray``, or ``ray`` when Ray is not installed.
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
    if name == "local":
        if workers not in (None, 1):
            raise ConfigError(f"the local executor runs one job at a time; got {workers} workers "
                              "(use --executor processes or ray)")
        return Executor(cpus_per_job)
    if name == "processes":
        return ProcessExecutor(workers, cpus_per_job)
    import_ray()
    return RayExecutor(ray_address, workers, cpus_per_job, gpus_per_job)


def import_ray():
    """The ``ray`` module, or a clear error naming the extra that installs it."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("the ray executor needs Ray: pip install 'prunekit[ray]' (every node of the cluster "
                          "needs it, and prunekit, too)") from exc
    return ray


def _threads(count: int) -> str:
    return f"{count} thread" + ("s" if count != 1 else "")


def job_failed(job: Any, where: str, exc: BaseException) -> JobError:
    """The error that stops a sweep when ``job`` failed on a worker."""
    return JobError(f"sweep job {job} failed on {where}: {type(exc).__name__}: {exc}\nThe points finished so far "
                    "are kept; after fixing the cause, rerun the same command to resume.")
