"""Which groups can be compacted, given the size constants of the model's code.

A traced ``view(x, [-1, 12, 16])`` or ``split(x, 32)`` holds sizes the code computed either from
tensor shapes (they follow new sizes by themselves) or from module attributes (compaction must
update them). :mod:`.provenance` tells which attribute each constant came from. Updating an
attribute is only sound if every place it sizes shrinks the same way: a group whose units are
sized by an attribute that also sizes axes outside the group (one ``head_dim`` for queries and
values) is marked not compactable.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from torch import nn

from .context import TraceContext
from .groups import Group
from .provenance import SizeRecord, record_sizes


def attach_attributes(ctx: TraceContext, records: list[SizeRecord]) -> None:
    """Set :attr:`LiteralSite.attribute` by matching graph shape ops to the ops recorded eagerly,
    in order, per (module, op)."""
    eager: dict[tuple[str, str], list[SizeRecord]] = defaultdict(list)
    for r in records:
        eager[(r.module, r.op)].append(r)
    order: dict[tuple[str, str], list[str]] = defaultdict(list)
    for site in ctx.literals:
        key = (site.modules[-1] if site.modules else "", site.family)
        if site.node not in order[key]:
            order[key].append(site.node)
    for site in ctx.literals:
        key = (site.modules[-1] if site.modules else "", site.family)
        ran = eager.get(key, [])
        if len(ran) == len(order[key]):
            values = ran[order[key].index(site.node)].values
            if site.position < len(values) and values[site.position][0] == site.value:
                site.attribute = values[site.position][1]
                continue
        tags = {tag for r in ran for value, tag in r.values if value == site.value and tag}
        site.attribute = sorted(tags)[0] if len(tags) == 1 else None if not tags else "ambiguous"


def mark_constants(ctx: TraceContext, groups: list[Group], model: nn.Module, example_inputs: Any) -> None:
    table = ctx.table
    by_atom = {table.find(g.atom): g for g in groups}
    if not any({table.find(a) for a in table.atoms_of(site.space)} & set(by_atom) for site in ctx.literals):
        return  # no constant sizes a prunable axis: nothing to attribute (saves a run of the model)
    attach_attributes(ctx, record_sizes(model, example_inputs))
    sites = defaultdict(list)
    for site in ctx.literals:
        atoms = {table.find(a) for a in table.atoms_of(site.space)} & set(by_atom)
        if site.attribute is None:
            continue
        if site.attribute == "ambiguous":
            for atom in atoms:
                _refuse(by_atom[atom], f"sized by the constant {site.value} ({site.node}), which comes from more "
                                       f"than one module attribute")
            continue
        sites[site.attribute].append((site, atoms))
    for attribute, entries in sites.items():  # a site without the group's atom keeps the attribute's value
        for atom in set.union(*(atoms for _, atoms in entries)):
            if any(atom not in atoms for _, atoms in entries):
                _refuse(by_atom[atom], f"{attribute.replace(':', '.')} also sizes axes outside this group")


def _refuse(group: Group, note: str) -> None:
    if group.compactable:
        group.compactable = False
        group.note = note
