"""Index spaces and their couplings: the algebra under structured pruning.

Every axis of every tensor in a traced graph is an index *space* of some size. Operations
*unify* spaces that must be pruned together (a Linear's input axis and its weight's columns; the
two operands of a residual ``add``), and *refine* a space into parts: a **sum** (``cat``/``split``:
``96 = 32 + 32 + 32``) or a row-major **product** (``view``: ``64 = 4 heads x 16``). Unifying two
spaces refined differently refines both to their common refinement, so coupling always
terminates. The unrefined spaces at the end are the *atoms*: each index of a prunable atom is
one structured unit (a channel, a neuron, an attention head).

A space is **frozen** when its indices may not be removed (it reaches the model's inputs or
outputs, a buffer, an unknown op...), and **mixed** when an op combines its indices (a
LayerNorm or softmax over it): removing one would change the others, so pruning it is not exact.

Example:
    >>> table = SpaceTable()
    >>> a, b = table.new(64), table.new(64)
    >>> heads, dim = table.new(4), table.new(16)
    >>> table.unify(a, table.product([heads, dim]))   # a view into 4 heads of 16
    >>> table.unify(a, b)                             # b is coupled to a
    >>> sorted(table.size(x) for x in table.atoms_of(b))
    [4, 16]
    >>> table.coordinates(b, table.find(heads))[:20].tolist()
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1]
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

SUM, PRODUCT = "sum", "product"


class SpaceTable:
    """A union-find of index spaces with sum/product refinements and frozen/mixed flags."""

    def __init__(self) -> None:
        self._parent: list[int] = []
        self._size: list[int] = []
        self._parts: dict[int, tuple[str, list[int]]] = {}
        self.frozen: dict[int, str] = {}
        self.mixed: dict[int, str] = {}

    # ------------------------------------------------------------------ basics
    def new(self, size: int, *, frozen: str | None = None) -> int:
        """A new space of ``size`` indices (frozen, with the reason, if ``frozen`` is given)."""
        self._parent.append(len(self._parent))
        self._size.append(int(size))
        space = len(self._parent) - 1
        if frozen or size <= 1:
            self.frozen[space] = frozen or "a single index"
        return space

    def find(self, space: int) -> int:
        root = space
        while self._parent[root] != root:
            root = self._parent[root]
        while self._parent[space] != root:
            self._parent[space], space = root, self._parent[space]
        return root

    def size(self, space: int) -> int:
        return self._size[self.find(space)]

    def parts(self, space: int) -> tuple[str, list[int]] | None:
        """``(kind, children)`` of a refined space, ``None`` for an atom."""
        return self._parts.get(self.find(space))

    def is_frozen(self, space: int) -> bool:
        return self.find(space) in self.frozen

    def is_mixed(self, space: int) -> bool:
        return self.find(space) in self.mixed

    def product(self, factors: Iterable[int]) -> int:
        """A new space refined as the row-major product of ``factors`` (size-1 factors dropped)."""
        factors = [f for f in factors if self.size(f) > 1]
        if len(factors) == 1:
            return factors[0]
        space = self.new(math.prod(self.size(f) for f in factors) if factors else 1)
        if factors:
            self._parts[space] = (PRODUCT, factors)
            self.frozen.pop(space, None)
        return space

    def concat(self, segments: Iterable[int]) -> int:
        """A new space refined as the direct sum of ``segments`` (``cat``)."""
        segments = [s for s in segments if self.size(s) > 0]
        if len(segments) == 1:
            return segments[0]
        space = self.new(sum(self.size(s) for s in segments))
        self._parts[space] = (SUM, segments)
        self.frozen.pop(space, None)
        return space

    # ------------------------------------------------------------------ flags
    def freeze(self, space: int, reason: str) -> None:
        """Mark ``space`` and every part of it as not prunable."""
        self._flag(self.frozen, space, reason)

    def mix(self, space: int, reason: str) -> None:
        """Mark ``space`` and every part of it as mixed (pruning it would not be exact)."""
        self._flag(self.mixed, space, reason)

    def _flag(self, flags: dict[int, str], space: int, reason: str) -> None:
        stack = [space]
        while stack:
            root = self.find(stack.pop())
            if root in flags:
                continue
            flags[root] = reason
            if root in self._parts:
                stack.extend(self._parts[root][1])

    # ------------------------------------------------------------------ unify
    def unify(self, a: int, b: int) -> None:
        """Couple two spaces of the same size index by index (a size mismatch freezes both)."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self._size[ra] != self._size[rb]:
            self.freeze(ra, "coupled to an axis of another size")
            self.freeze(rb, "coupled to an axis of another size")
            return
        pa, pb = self._parts.pop(ra, None), self._parts.pop(rb, None)
        self._parent[rb] = ra
        for flags in (self.frozen, self.mixed):
            reason = flags.pop(rb, None) or flags.get(ra)
            if reason and ra not in flags:
                flags[ra] = reason
        if pa is None or pb is None:
            if pa or pb:
                self._parts[ra] = pa or pb
        else:
            self._parts[ra] = pa
            self._reconcile(ra, pa, pb)
        for flags in (self.frozen, self.mixed):  # a flag on the merged space reaches all its parts
            if ra in flags and ra in self._parts:
                reason = flags.pop(ra)
                self._flag(flags, ra, reason)

    def _reconcile(self, root: int, pa: tuple[str, list[int]], pb: tuple[str, list[int]]) -> None:
        """Bring two refinements of one space to a common one and unify their parts."""
        if pa[0] == pb[0] == SUM:
            cuts = sorted(set(_offsets(self, pa[1])) | set(_offsets(self, pb[1])))
            left, right = self._split_sum(pa[1], cuts), self._split_sum(pb[1], cuts)
        elif pa[0] == pb[0] == PRODUCT:
            strides = _common_strides(self, pa[1], pb[1])
            if strides is None:
                self.freeze(root, "reshaped in incompatible ways")
                return
            left, right = self._split_product(pa[1], strides), self._split_product(pb[1], strides)
        else:
            sums, products = (pa, pb) if pa[0] == SUM else (pb, pa)
            self._sum_meets_product(root, sums[1], products[1])
            return
        if left is None or right is None:
            self.freeze(root, "split in incompatible ways")
            return
        for x, y in zip(left, right):
            self.unify(x, y)
        self._parts[root] = (pa[0], left)

    def _split_sum(self, segments: list[int], cuts: list[int]) -> list[int] | None:
        """Pieces of a sum refinement cut at every offset in ``cuts``."""
        pieces, start = [], 0
        for segment in segments:
            end = start + self.size(segment)
            inner = [c - start for c in cuts if start < c < end]
            pieces += self._cut(segment, inner) if inner else [segment]
            start = end
        return pieces

    def _cut(self, space: int, cuts: list[int]) -> list[int]:
        """Refine ``space`` as a sum at ``cuts`` (offsets inside it); returns the pieces."""
        bounds = [0, *cuts, self.size(space)]
        piece_sizes = [b - a for a, b in zip(bounds, bounds[1:])]
        existing = self.parts(space)
        if existing is not None and existing[0] == SUM and _offsets(self, existing[1]) == bounds[:-1][1:]:
            return list(existing[1])
        pieces = [self.new(n) for n in piece_sizes]
        self.unify(space, self.concat(pieces))
        return pieces

    def _split_product(self, factors: list[int], strides: list[int]) -> list[int]:
        """Factors of a product refinement split so that their strides are exactly ``strides``."""
        out = []
        for index, factor in enumerate(factors):
            inner = _stride(self, factors, index)
            mine = [s for s in strides if inner <= s < inner * self.size(factor)]
            if len(mine) == 1:
                out.append(factor)
                continue
            sizes = [b // a for a, b in zip(sorted(mine), sorted(mine)[1:] + [inner * self.size(factor)])][::-1]
            pieces = [self.new(n) for n in sizes]
            self.unify(factor, self.product(pieces))
            out += pieces
        return out

    def _sum_meets_product(self, root: int, segments: list[int], factors: list[int]) -> None:
        """``cat`` of equal blocks met a ``view``: each block is the product's inner part; the outer
        factor (which block) cannot be pruned on its own."""
        outer, inner = factors[0], factors[1:]
        block = math.prod(self.size(f) for f in inner)
        pieces = self._split_sum(segments, list(range(block, self.size(root), block)))
        if pieces is None or any(self.size(p) != block for p in pieces):
            self.freeze(root, "split in incompatible ways")
            return
        inner_space = self.product(inner) if len(inner) > 1 else inner[0]
        for piece in pieces:
            self.unify(piece, inner_space)
        self.freeze(outer, "blocks of a concatenation reshaped into an axis")
        self._parts[self.find(root)] = (PRODUCT, factors)

    # ------------------------------------------------------------------ reading
    def atoms_of(self, space: int) -> list[int]:
        """The atoms (unrefined spaces) a space is made of, outer first."""
        parts = self.parts(space)
        if parts is None:
            return [self.find(space)]
        return [atom for child in parts[1] for atom in self.atoms_of(child)]

    def coordinates(self, space: int, atom: int) -> np.ndarray:
        """For each index of ``space``, its index in ``atom`` (-1 where the atom is not involved)."""
        root, atom = self.find(space), self.find(atom)
        n = self._size[root]
        if root == atom:
            return np.arange(n)
        parts = self._parts.get(root)
        if parts is None:
            return np.full(n, -1)
        if parts[0] == SUM:
            return np.concatenate([self.coordinates(c, atom) for c in parts[1]])
        out = np.full(n, -1)
        positions = np.arange(n)
        for index, factor in enumerate(parts[1]):
            inner = self.coordinates(factor, atom)
            if (inner >= 0).any():
                stride = _stride(self, parts[1], index)
                out = np.where(out >= 0, out, inner[(positions // stride) % self.size(factor)])
        return out


def _offsets(table: SpaceTable, segments: list[int]) -> list[int]:
    """Inner boundaries of a sum (the start of every segment but the first)."""
    bounds, start = [], 0
    for s in segments[:-1]:
        start += table.size(s)
        bounds.append(start)
    return bounds


def _stride(table: SpaceTable, factors: list[int], index: int) -> int:
    return math.prod(table.size(f) for f in factors[index + 1:])


def _common_strides(table: SpaceTable, a: list[int], b: list[int]) -> list[int] | None:
    """The strides of the coarsest product refining both (row-major), or None if there is none."""
    sa = {_stride(table, a, i) for i in range(len(a))}
    sb = {_stride(table, b, i) for i in range(len(b))}
    strides = sorted(sa | sb)
    total = table.size(a[0]) * _stride(table, a, 0)
    chain = strides + [total]
    if any(big % small for small, big in zip(chain, chain[1:])):
        return None
    return strides
