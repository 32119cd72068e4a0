"""What op rules work with: the traced graph's values and their axis spaces.

A *layout* is what a graph value is, seen by the rules: for a tensor, one space per axis
(a list of space ids); for a tuple or list of tensors, a list of layouts; ``None`` for anything
else (ints, shapes, devices).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx

from .spaces import SpaceTable

FLOAT_TYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@dataclass
class LiteralSite:
    """An int constant of the traced code that must follow a space's size (e.g. ``split(x, 32)``):
    when the space shrinks, the module attribute that produced the constant is updated."""

    node: str
    modules: tuple[str, ...]
    value: int
    space: int
    family: str = "view"  # the shape op: view, reshape, split, unflatten
    position: int = 0  # which of the op's int size arguments
    attribute: str | None = None  # "module.path:attr" it came from (see .provenance), None if from a shape


@dataclass
class TraceContext:
    """The state op rules read and update while walking the graph."""

    graph: fx.Graph
    table: SpaceTable = field(default_factory=SpaceTable)
    layouts: dict[fx.Node, Any] = field(default_factory=dict)
    tensor_spaces: dict[int, list[int]] = field(default_factory=dict)
    tensor_names: dict[int, list[str]] = field(default_factory=dict)
    buffer_uses: dict[int, set[str]] = field(default_factory=dict)
    unknown: list[tuple[str, str, str]] = field(default_factory=list)
    literals: list[LiteralSite] = field(default_factory=list)
    head_axes: list[int] = field(default_factory=list)
    current: fx.Node | None = None

    # ----------------------------------------------------------------- values
    def layout(self, value: Any) -> Any:
        """The layout of an op argument (a node, a list of nodes, or a constant)."""
        if isinstance(value, fx.Node):
            return self.layouts.get(value)
        if isinstance(value, (list, tuple)):
            return [self.layout(v) for v in value]
        return None

    def val(self, value: Any) -> Any:
        """The traced (fake) value of a node, or the constant itself."""
        return value.meta.get("val") if isinstance(value, fx.Node) else value

    def shape(self, value: Any) -> tuple[int, ...]:
        v = self.val(value)
        return tuple(int(d) for d in v.shape)

    def is_float(self, value: Any) -> bool:
        v = self.val(value)
        return isinstance(v, torch.Tensor) and v.dtype in FLOAT_TYPES

    def fresh(self, value: Any, reason: str) -> Any:
        """New frozen spaces for every axis of a value (``None`` for non-tensors)."""
        v = self.val(value)
        if isinstance(v, torch.Tensor):
            return [self.table.new(int(d), frozen=reason) for d in v.shape]
        if isinstance(v, (list, tuple)):
            return [self.fresh(item, reason) for item in v]
        return None

    def new_axis(self, size: int, reason: str | None = None) -> int:
        return self.table.new(size, frozen=reason)

    # ----------------------------------------------------------------- coupling
    def unify(self, a: int | None, b: int | None) -> None:
        if a is not None and b is not None:
            self.table.unify(a, b)

    def freeze_layout(self, layout: Any, reason: str) -> None:
        """Freeze every space of a layout (nested lists included)."""
        if isinstance(layout, list):
            for item in layout:
                if isinstance(item, int):
                    self.table.freeze(item, reason)
                else:
                    self.freeze_layout(item, reason)

    def broadcast(self, operands: list[Any], out: Any) -> list[int]:
        """Layout of a broadcasting element-wise op on graph values (see :meth:`broadcast_layouts`)."""
        layouts = [self.layout(v) for v in operands]
        return self.broadcast_layouts([lay for lay in layouts if isinstance(lay, list)], self.shape(out))

    def broadcast_layouts(self, layouts: list[list[int]], shape: tuple[int, ...]) -> list[int]:
        """Axes aligned from the right: operands whose axis has the output's size are coupled on
        it; size-1 (broadcast) axes are not; an axis no operand gives is a new frozen one."""
        result = []
        for axis in range(-len(shape), 0):
            spaces = [lay[axis] for lay in layouts if len(lay) >= -axis and isinstance(lay[axis], int)
                      and self.table.size(lay[axis]) == shape[axis]]
            if not spaces:
                result.append(self.new_axis(shape[axis], "broadcast"))
                continue
            for other in spaces[1:]:
                self.unify(spaces[0], other)
            result.append(spaces[0])
        return result

    def modules(self, node: fx.Node | None = None) -> tuple[str, ...]:
        """Qualified names of the modules whose forward ran the node, outermost first."""
        stack = (node or self.current).meta.get("nn_module_stack") or {}
        return tuple(name for name, _ in stack.values())

    def module_types(self, node: fx.Node | None = None) -> tuple[str, ...]:
        stack = (node or self.current).meta.get("nn_module_stack") or {}
        return tuple(cls if isinstance(cls, str) else f"{cls.__module__}.{cls.__qualname__}" for _, cls in stack.values())

    def literal(self, value: Any, space: int, family: str, position: int) -> None:
        """Record an int size argument of a shape op, which may have to follow ``space`` (not -1)."""
        if isinstance(value, int) and not isinstance(value, bool) and value > 1:
            self.literals.append(LiteralSite(self.current.name, self.modules(), value, space, family, position))
