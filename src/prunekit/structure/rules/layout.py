"""Rules of ops that move, split, join or reshape axes: transpose/permute, (un)squeeze, select, slice,
expand, view/reshape/flatten/unflatten, cat/stack, split/chunk/unbind, getitem."""

from __future__ import annotations

import math

from .registry import register_rule


def _dim(d: int, rank: int) -> int:
    return d % rank if rank else 0


@register_rule("getitem")
def getitem(ctx, node):
    layout, index = ctx.layout(node.args[0]), node.args[1]
    if isinstance(layout, list) and isinstance(index, int) and index < len(layout) and isinstance(layout[index], list):
        return layout[index]
    return ctx.fresh(node, "indexing")


@register_rule("aten.transpose", "aten.swapaxes", "aten.swapdims")
def transpose(ctx, node):
    x = list(ctx.layout(node.args[0]))
    a, b = _dim(node.args[1], len(x)), _dim(node.args[2], len(x))
    x[a], x[b] = x[b], x[a]
    return x


@register_rule("aten.t", "aten.numpy_T")
def t(ctx, node):
    return list(reversed(ctx.layout(node.args[0])))


@register_rule("aten.permute")
def permute(ctx, node):
    x = ctx.layout(node.args[0])
    return [x[_dim(d, len(x))] for d in node.args[1]]


@register_rule("aten.movedim")
def movedim(ctx, node):
    x = ctx.layout(node.args[0])
    src = [_dim(d, len(x)) for d in ([node.args[1]] if isinstance(node.args[1], int) else node.args[1])]
    dst = [_dim(d, len(x)) for d in ([node.args[2]] if isinstance(node.args[2], int) else node.args[2])]
    rest = iter([s for i, s in enumerate(x) if i not in src])
    placed = dict(zip(dst, (x[s] for s in src)))
    return [placed[i] if i in placed else next(rest) for i in range(len(x))]


@register_rule("aten.unsqueeze")
def unsqueeze(ctx, node):
    x = list(ctx.layout(node.args[0]))
    x.insert(_dim(node.args[1], len(x) + 1), ctx.new_axis(1))
    return x


@register_rule("aten.squeeze")
def squeeze(ctx, node):
    x, shape = ctx.layout(node.args[0]), ctx.shape(node.args[0])
    dims = node.args[1] if len(node.args) > 1 else None
    dims = range(len(x)) if dims is None else ([dims] if isinstance(dims, int) else dims)
    drop = {_dim(d, len(x)) for d in dims if shape[_dim(d, len(x))] == 1}
    return [s for i, s in enumerate(x) if i not in drop]


@register_rule("aten.select")
def select(ctx, node):
    """Picking one index of an axis removes the axis; that index must stay, so the axis is frozen."""
    x = ctx.layout(node.args[0])
    d = _dim(node.args[1], len(x))
    ctx.table.freeze(x[d], "one index of it is selected")
    return [s for i, s in enumerate(x) if i != d]


@register_rule("aten.slice")
def slice_(ctx, node):
    """A contiguous range of an axis is a part of its space (a sum refinement); strided ranges freeze it."""
    x = list(ctx.layout(node.args[0]))
    args = list(node.args) + [None] * 5
    rank = len(x)
    d = _dim(args[1] if args[1] is not None else 0, rank)
    size = ctx.shape(node.args[0])[d]
    start, end, step = args[2] or 0, args[3], args[4] or 1
    start = max(0, start + size if start < 0 else start)
    end = size if end is None else min(size, end + size if end < 0 else end)
    if start == 0 and end >= size and step == 1:
        return x
    if step != 1 or start >= end:
        ctx.table.freeze(x[d], "strided or empty slice")
        x[d] = ctx.new_axis(ctx.shape(node)[d], "slice")
        return x
    cuts = [c for c in (start, end) if 0 < c < size]
    pieces = ctx.table._cut(x[d], cuts)
    x[d] = pieces[1 if start > 0 else 0]
    return x


@register_rule("aten.expand", "aten.expand_as", "aten.broadcast_to")
def expand(ctx, node):
    """Axes broadcast from size 1 are new (copies of one index): frozen."""
    x = ctx.layout(node.args[0])
    shape = ctx.shape(node)
    lead = len(shape) - len(x)
    out = [ctx.new_axis(n, "broadcast") for n in shape[:lead]]
    for axis, space in enumerate(x):
        n = shape[lead + axis]
        out.append(space if ctx.table.size(space) == n else ctx.new_axis(n, "broadcast"))
    return out


@register_rule("aten.view", "aten.reshape", "aten._unsafe_view", "aten.flatten", "aten.unflatten", "aten.view_as",
               "aten.reshape_as")
def reshape(ctx, node):
    """Row-major reshape: groups of input axes and output axes with equal products are the same
    space, refined as the product of the axes on each side (e.g. 64 -> 4 heads x 16). The sizes
    the code asked for are recorded against the output axes (constants that may need to follow)."""
    x = ctx.layout(node.args[0])
    src, dst = ctx.shape(node.args[0]), ctx.shape(node)
    out: list[int] = []
    for gi, gj in _groups(src, dst):
        out += _regroup(ctx, [x[k] for k in gi], [dst[k] for k in gj])
    family = "unflatten" if "unflatten" in str(node.target) else "reshape" if "reshape" in str(node.target) else "view"
    for position, (space, value) in enumerate(zip(out, _requested(node, len(dst)))):
        ctx.literal(value, space, family, position + (2 if family == "unflatten" else 0))
    return out


def _groups(src: tuple[int, ...], dst: tuple[int, ...]) -> list[tuple[list[int], list[int]]]:
    """Pair consecutive input axes with consecutive output axes of equal product (size-1 axes join a group)."""
    groups, i, j = [], 0, 0
    while i < len(src) or j < len(dst):
        gi, gj, a, b = [], [], 1, 1
        while True:
            if i < len(src) and (a < b or not gi or (a == b and src[i] == 1)):
                a *= src[i]
                gi.append(i)
                i += 1
            elif j < len(dst) and (b < a or not gj or (a == b and dst[j] == 1)):
                b *= dst[j]
                gj.append(j)
                j += 1
            else:
                break
        groups.append((gi, gj))
    return groups


def _regroup(ctx, spaces: list[int], sizes: list[int]) -> list[int]:
    big = [s for s in spaces if ctx.table.size(s) > 1]
    if len(big) == 1 and len([n for n in sizes if n > 1]) == 1:
        return [big[0] if n > 1 else ctx.new_axis(1) for n in sizes]
    outs = [ctx.new_axis(n) for n in sizes]
    if math.prod(sizes) > 1:
        ctx.unify(ctx.table.product(spaces), ctx.table.product(outs))
    return outs


def _requested(node, rank: int) -> list:
    """The int sizes the code passed for each output axis (``None`` where none was given)."""
    name = str(node.target)
    if "unflatten" in name:
        d, sizes = node.args[1] % rank if rank else 0, list(node.args[2])
        return [None] * d + sizes + [None] * (rank - d - len(sizes))
    if ("view" in name or "reshape" in name) and len(node.args) > 1 and isinstance(node.args[1], (list, tuple)):
        return list(node.args[1])
    return [None] * rank


@register_rule("aten.cat", "aten.concat", "aten.concatenate")
def cat(ctx, node):
    """The joined axis is the sum of the inputs' axes; the other axes are coupled across inputs."""
    tensors = [t for t in node.args[0] if ctx.shape(t) and 0 not in ctx.shape(t)]
    layouts = [ctx.layout(t) for t in tensors]
    rank = len(ctx.shape(node))
    d = _dim(node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0), rank)
    out = list(layouts[0])
    for layout in layouts[1:]:
        for axis in range(rank):
            if axis != d:
                ctx.unify(out[axis], layout[axis])
    out[d] = ctx.table.concat([layout[d] for layout in layouts])
    return out


@register_rule("aten.stack")
def stack(ctx, node):
    layouts = [ctx.layout(t) for t in node.args[0]]
    rank = len(ctx.shape(node))
    d = _dim(node.args[1] if len(node.args) > 1 else 0, rank)
    out = list(layouts[0])
    for layout in layouts[1:]:
        for a, b in zip(out, layout):
            ctx.unify(a, b)
    out.insert(d, ctx.new_axis(len(layouts), "stacked"))
    return out


@register_rule("aten.split", "aten.split_with_sizes", "aten.chunk", "aten.tensor_split")
def split(ctx, node):
    """Pieces of the split axis are parts of its space (a sum refinement); the split sizes are
    constants of the code, recorded against the pieces."""
    x = ctx.layout(node.args[0])
    pieces_val = ctx.val(node)
    rank = len(x)
    d = _dim(node.args[2] if len(node.args) > 2 else node.kwargs.get("dim", 0), rank)
    sizes = [int(v.shape[d]) for v in pieces_val]
    cuts, start = [], 0
    for n in sizes[:-1]:
        start += n
        cuts.append(start)
    pieces = ctx.table._cut(x[d], cuts) if cuts else [x[d]]
    if "split" in str(node.target) and isinstance(node.args[1], int):
        for piece in pieces:
            ctx.literal(node.args[1], piece, "split", 0)
    out = []
    for piece in pieces:
        layout = list(x)
        layout[d] = piece
        out.append(layout)
    return out


@register_rule("aten.unbind")
def unbind(ctx, node):
    x = ctx.layout(node.args[0])
    d = _dim(node.args[1] if len(node.args) > 1 else 0, len(x))
    ctx.table.freeze(x[d], "unbound into separate tensors")
    return [[s for i, s in enumerate(x) if i != d] for _ in ctx.val(node)]
