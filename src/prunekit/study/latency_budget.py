"""Deprecated: the latency solver is :mod:`prunekit.plan.latency`."""

from ..plan.latency import ATTEMPTS, REFINE, LatencyPlan, plan_for_latency

__all__ = ["ATTEMPTS", "REFINE", "LatencyPlan", "plan_for_latency"]
