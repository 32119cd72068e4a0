"""Options that choose a schedule's recovery recipe and distillation (``prune`` and ``sweep``),
generated from :class:`~prunekit.schedules.Recovery`."""

from __future__ import annotations

import argparse

from ..schedules import SCHEDULES, Recovery
from .options import add_dataclass_options, dataclass_from_args


def schedule_help() -> str:
    return "; ".join(f"{name}: {SCHEDULES.describe(name)}" for name in SCHEDULES.names())


def add_recovery_options(parser: argparse.ArgumentParser) -> None:
    """Every field of :class:`Recovery`: ``--finetune-epochs``, ``--iterative-lr``, ``--round-fraction``,
    ``--distill``, ``--distill-temperature``..."""
    add_dataclass_options(parser, Recovery, title="recovery recipe (schedules that train)")


def recovery_from_args(args: argparse.Namespace) -> Recovery:
    """The :class:`Recovery` the parsed options describe."""
    return dataclass_from_args(Recovery, args)
