"""The life of a processes-executor worker: its torch threads, and its end when the driver dies.

A worker started by a driver that has died already exits at once; otherwise a daemon thread watches
(and, on Linux, the kernel sends SIGTERM when the driver dies).

Example:
    >>> PR_SET_PDEATHSIG
    1
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

import torch

PR_SET_PDEATHSIG = 1
"""Linux ``prctl`` option: the signal a process gets when its parent dies."""


def start_worker(threads: int, driver: int) -> None:
    """Initializer of the processes executor's workers: torch threads, and exit when ``driver`` (the process
    that started the pool) dies, killed or not, instead of idling forever."""
    torch.set_num_threads(threads)
    if sys.platform.startswith("linux"):  # the kernel sends SIGTERM when the driver dies
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            pass
    watch_driver(driver)


def watch_driver(driver: int, every: float = 1.0) -> None:
    """Exit this process now if its parent is no longer ``driver`` (it died before we watched), else as
    soon as it changes: checked every ``every`` seconds by a daemon thread (the fallback of prctl)."""
    if os.getppid() != driver:
        os._exit(1)

    def watch() -> None:
        while os.getppid() == driver:
            time.sleep(every)
        os._exit(1)

    threading.Thread(target=watch, name="prunekit-watch-driver", daemon=True).start()
