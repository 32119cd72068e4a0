"""Timing helpers: a median of interleaved repeats, with an injectable timer (for tests), and a cold-cache
timer for models whose weights stream from memory (:func:`cold_timer`)."""

from __future__ import annotations

import functools
import statistics
import time
from pathlib import Path
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


DEFAULT_CACHE_BYTES = 32 * 2 ** 20
"""Last-level cache size assumed where the system does not say (``/sys/devices/system/cpu``)."""


@functools.lru_cache(maxsize=1)
def last_level_cache_bytes() -> int:
    """The largest CPU cache the system reports (Linux sysfs), else :data:`DEFAULT_CACHE_BYTES`.

    Example:
        >>> last_level_cache_bytes() >= 2 ** 20
        True
    """
    sizes = []
    for entry in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = entry.read_text().strip().upper() if entry.is_file() else ""
        units = {"K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30}
        if text[:-1].isdigit() and text[-1] in units:
            sizes.append(int(text[:-1]) * units[text[-1]])
    return max(sizes, default=DEFAULT_CACHE_BYTES)


def cold_timer(timer: Timer = wall_timer, cache_bytes: int | None = None) -> Timer:
    """``timer`` with the caches flushed before each timed call (a buffer twice the last-level cache is read,
    untimed): what a layer costs when, as in a language model's decode step, its weights come from memory.

    Example:
        >>> seconds = cold_timer()("dense", lambda: None)  # one timed call, the flush untimed
        >>> 0 <= seconds < 0.5
        True
    """
    import torch

    buffer = torch.ones(2 * (cache_bytes or last_level_cache_bytes()) // 4)

    def timed(kernel: str, fn: Callable[[], object]) -> float:
        buffer.sum()  # evicts the weights the previous call left in the caches
        return timer(kernel, fn)

    return timed
