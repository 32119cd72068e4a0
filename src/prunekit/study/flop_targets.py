"""Deprecated: the FLOP-target solver is :mod:`prunekit.plan.flops`."""

from ..plan.flops import mac_ratio, sparsity_for_reduction

__all__ = ["mac_ratio", "sparsity_for_reduction"]
