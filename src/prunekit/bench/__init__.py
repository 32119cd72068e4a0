"""Benchmarks that print measured figures: inference latency of dense / masked / sparse / compact
versions as ratios measured in one run, per-point measurements for sweeps, training speed.

Example:
    >>> VERSIONS
    ('dense', 'masked', 'sparse', 'compact', 'compact+sparse')
"""

from .latency import VERSIONS, LatencyRow, benchmark_latency, build_versions, count_flops, format_latency, \
    masked_version
from .point import measure_point
from .train_speed import benchmark_training, forward_flops

__all__ = ["VERSIONS", "LatencyRow", "benchmark_latency", "benchmark_training", "build_versions", "count_flops",
           "format_latency", "forward_flops", "masked_version", "measure_point"]
