"""Op rules: how each traced op couples the axes of its inputs, parameters and outputs.

Rules live in one registry keyed by op name (``"aten.linear"``, ``"aten.conv2d"``,
``"getitem"``...); each is ``rule(ctx, node) -> layout`` (see :mod:`..context`). An op without a
rule is not guessed at: every axis it touches is frozen (never pruned) and the op is reported.
Register a rule for a custom op with :func:`register_rule`.

Example:
    >>> from prunekit.structure import register_rule, STRUCTURE_RULES
    >>> @register_rule("mylib.scale")
    ... def scale_rule(ctx, node):  # keeps every axis of its first argument
    ...     return ctx.layout(node.args[0])
    >>> "mylib.scale" in STRUCTURE_RULES
    True
"""

from __future__ import annotations

from . import attention, elementwise, layout, params  # noqa: F401  (register the built-in rules)
from .registry import STRUCTURE_RULES, Rule, op_name, register_rule

__all__ = ["STRUCTURE_RULES", "Rule", "op_name", "register_rule"]
