"""The pruning options of every command that prunes, generated from :class:`~prunekit.prune.PruneSpec`.

``prune``, ``sensitivity`` and ``bench latency`` take the same options, named after the spec's fields,
with help from its docstring and choices from the registries (a method or criterion registered by a
plug-in is a valid choice at once); :func:`prune_spec_from_args` builds the spec back, so its rules
are checked in one place. A new field of the spec is a new option of every such command.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_prune_options(parser)
    >>> spec = prune_spec_from_args(parser.parse_args(["--method", "unit", "--layers", "fc1,fc2", "--include-inexact"]))
    >>> spec.method, spec.layers, spec.include_inexact
    ('unit', ('fc1', 'fc2'), True)
"""

from __future__ import annotations

import argparse
from typing import Any

from ..prune import CRITERIA, METHODS, SCOPES, PruneSpec
from .common import name_list, positive_int
from .options import add_dataclass_options, dataclass_from_args, field_help

HAND_WRITTEN = ("method", "scope", "layers", "criterion", "pattern", "plan", "plan_sparsity")
"""Fields whose options are written below (choices from registries, lists); the others are generated."""


def add_prune_options(parser: argparse.ArgumentParser, *, skip: tuple[str, ...] = (),
                      default_method: str | None = "weight") -> None:
    """Add ``--method``, ``--scope``, ``--layers``, ``--criterion``, ``--pattern`` and an option for every
    other field of :class:`PruneSpec` (``--include-output``, ``--calibration-batches``, ``--reconstruct``,
    ``--include-inexact``...), except those in ``skip``."""
    helps = field_help(PruneSpec)
    group = parser.add_argument_group("what to prune (a PruneSpec)")
    if "method" not in skip:
        group.add_argument("--method", choices=METHODS.names(), default=default_method,
                           help="; ".join(f"{n}: {METHODS.describe(n)}" for n in METHODS.names()))
    if "scope" not in skip:
        group.add_argument("--scope", choices=list(SCOPES), default="layer",
                           help="; ".join(f"{n}: {text}" for n, text in SCOPES.items()))
    if "layers" not in skip:
        group.add_argument("--layers", type=name_list, default=None, help="comma-separated " + helps["layers"])
    if "criterion" not in skip:
        group.add_argument("--criterion", choices=CRITERIA.names(), default=None, metavar="NAME",
                           help="what ranks weights or units (default: the method's); "
                           + "; ".join(f"{n}: {CRITERIA.describe(n)}" for n in CRITERIA.names()))
    if "pattern" not in skip:
        group.add_argument("--pattern", default=None, metavar="N:M", help=helps["pattern"])
    add_dataclass_options(group, PruneSpec, skip=HAND_WRITTEN + tuple(skip),
                          types={"calibration_batches": positive_int})


def prune_spec_from_args(args: argparse.Namespace, **fields: Any) -> PruneSpec:
    """The :class:`PruneSpec` the options of :func:`add_prune_options` describe (``fields`` override them)."""
    given = {name: getattr(args, name) for name in ("method", "scope", "layers", "criterion", "pattern")
             if hasattr(args, name) and name not in fields}
    if given.get("method") is None:
        given.pop("method", None)
    return dataclass_from_args(PruneSpec, args, skip=HAND_WRITTEN, **given, **fields)


def other_spec_fields(args: argparse.Namespace, held: tuple[str, ...]) -> tuple[tuple[str, Any], ...]:
    """``((field, value), ...)`` of the generated :class:`PruneSpec` options a command does not hold in a
    field of its own (``held``) and whose value is not the default: a sweep passes them on to every spec."""
    defaults = PruneSpec()
    return tuple((name, getattr(args, name)) for name in _generated()
                 if name not in held and hasattr(args, name) and getattr(args, name) != getattr(defaults, name))


def _generated() -> list[str]:
    import dataclasses

    return [f.name for f in dataclasses.fields(PruneSpec) if f.name not in HAND_WRITTEN]
