"""The result of tracing a model: its coupled groups, what is frozen and why, and the code constants
that follow axis sizes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .constants import mark_constants
from .context import LiteralSite
from .groups import Group, extract_groups
from .spaces import SpaceTable
from .trace import couple, export


@dataclass
class Structure:
    """A traced model's coupled channel groups.

    Attributes:
        groups: every group of prunable units (exact or not, see :attr:`Group.exact`).
        frozen: ``{"tensor.axis": reason}`` for the axes that are never pruned.
        unknown_ops: ``(op, node, module)`` of the ops without a rule (their axes are frozen).
        literals: code constants that must follow axis sizes (for compaction).
    """

    groups: list[Group]
    frozen: dict[str, str]
    unknown_ops: list[tuple[str, str, str]]
    literals: list[LiteralSite] = field(default_factory=list)
    table: SpaceTable | None = field(default=None, repr=False)
    tensor_spaces: dict[str, list[int]] = field(default_factory=dict, repr=False)

    def prunable(self, include_inexact: bool = False) -> list[Group]:
        """The groups unit pruning uses: the exact ones (and the others with ``include_inexact``)."""
        return [g for g in self.groups if g.exact or include_inexact]

    def group(self, name: str) -> Group:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(name)

    def format(self) -> str:
        """A plain-text summary: one line per group, then the frozen axes and unknown ops."""
        lines = [g.describe() for g in self.groups]
        if self.unknown_ops:
            lines.append("ops without a structure rule (their axes are kept whole): " +
                         ", ".join(sorted({f"{op} in {module}" for op, _, module in self.unknown_ops})))
        return "\n".join(lines)


def trace(model: nn.Module, example_inputs: Any) -> Structure:
    """Trace ``model`` on ``example_inputs`` and return its coupled channel groups.

    Args:
        model: any ``nn.Module`` (not modified; traced in eval mode).
        example_inputs: one batch it accepts: a tensor, a tuple of arguments, or a dict of keyword
            arguments (Hugging Face style). Use a batch of 2 or more.

    Returns:
        A :class:`Structure`. It depends only on the architecture (names, shapes, module types) and the
        input shapes; every call traces anew, so hold one :func:`~prunekit.structure.model_structure`
        (as :class:`~prunekit.prune.Pruner` does) to prune, compact and time a model on one trace.

    Raises:
        TraceError: if the model cannot be traced (e.g. data-dependent control flow) or does not
            accept the inputs; the message names the line and what to do.
    """
    program = export(model, example_inputs)
    ctx = couple(program, model)
    groups, frozen = extract_groups(ctx, model)
    mark_constants(ctx, groups, model, example_inputs)
    names = {ctx.tensor_names[k][0]: v for k, v in ctx.tensor_spaces.items()}
    return Structure(groups, frozen, ctx.unknown, ctx.literals, ctx.table, names)
