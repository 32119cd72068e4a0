"""The registry of op rules (see the package docstring)."""

from __future__ import annotations

import operator
from typing import Any, Callable

from ...registry import Registry

Rule = Callable[..., Any]
STRUCTURE_RULES: Registry[Rule] = Registry("structure rule")
"""Op name -> rule."""


def op_name(target: Any) -> str:
    """The registry key of a graph node's target: ``"aten.linear"``, ``"getitem"``..."""
    if target is operator.getitem:
        return "getitem"
    packet = getattr(target, "overloadpacket", None)
    if packet is not None:
        return str(packet)
    return getattr(target, "__qualname__", None) or str(target)


def register_rule(*names: str, overwrite: bool = False) -> Callable[[Rule], Rule]:
    """Decorator registering a rule under one or more op names."""

    def decorate(fn: Rule) -> Rule:
        for name in names:
            STRUCTURE_RULES.register(name, fn, overwrite=overwrite)
        return fn

    return decorate
