"""Timing helpers: a median of interleaved repeats, with an injectable timer (for tests)."""

from __future__ import annotations

import statistics
import time
from typing import Callable, Mapping

Timer = Callable[[str, Callable[[], object]], float]
"""``timer(kernel_name, fn) -> seconds`` for one call of ``fn`` (injectable for tests)."""


def wall_timer(kernel: str, fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes (``time.perf_counter``)."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def measure(fns: Mapping[str, Callable[[], object]], repeats: int, timer: Timer = wall_timer,
            warmup: int = 2) -> dict[str, float]:
    """Median seconds of each function; calls are interleaved so drifting load affects all alike.

    Example:
        >>> measure({"noop": lambda: None}, repeats=5)["noop"] < 0.01
        True
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(max(1, repeats)):
        for name, fn in fns.items():
            samples[name].append(timer(name, fn))
    return {name: statistics.median(s) for name, s in samples.items()}
