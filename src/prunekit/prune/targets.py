"""Deprecated name of :mod:`prunekit.prune.layers` (which layers are pruned and what a unit consists of):
the module holds layers, while "target" elsewhere means how much to prune."""

from prunekit.prune.layers import *  # noqa: F401,F403
