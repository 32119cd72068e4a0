"""The local executor, which every executor extends, and the error a failed job raises.

Example:
    >>> with Executor() as executor:
    ...     [result for _, result in executor.run(len, ["ab", "c"])]
    [2, 1]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

from ..errors import JobError


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
        return f"the local executor (one process, {threads_text(torch.get_num_threads())})"


def threads_text(count: int) -> str:
    """``"1 thread"``, ``"2 threads"``."""
    return f"{count} thread" + ("s" if count != 1 else "")


def job_failed(job: Any, where: str, exc: BaseException) -> JobError:
    """The error that stops a sweep when ``job`` failed on a worker."""
    return JobError(f"sweep job {job} failed on {where}: {type(exc).__name__}: {exc}\nThe points finished so far "
                    "are kept; after fixing the cause, rerun the same command to resume.")
