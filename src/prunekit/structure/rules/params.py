"""Rules of the ops that consume parameters: linear, convolutions, matrix products, embeddings, norms."""

from __future__ import annotations

from .registry import op_name, register_rule


def _bias(ctx, bias, space) -> None:
    layout = ctx.layout(bias)
    if isinstance(layout, list) and layout:
        ctx.unify(layout[-1], space)


@register_rule("aten.linear")
def linear(ctx, node):
    """``y = x W^T + b``: x[-1] ~ W[1]; y[-1] = W[0] ~ b[0]."""
    x, w = ctx.layout(node.args[0]), ctx.layout(node.args[1])
    ctx.unify(x[-1], w[1])
    if len(node.args) > 2:
        _bias(ctx, node.args[2], w[0])
    return [*x[:-1], w[0]]


@register_rule("aten.conv1d", "aten.conv2d", "aten.conv3d", "aten.convolution")
def conv(ctx, node):
    """Out channels = W[0] ~ bias; in channels ~ W[1] (groups 1), or ~ out (depthwise);
    other group counts freeze the channels. Spatial axes of the output are not channels."""
    x, w = ctx.layout(node.args[0]), ctx.layout(node.args[1])
    args = list(node.args) + [None] * 9
    general = op_name(node.target) == "aten.convolution"  # (x, w, b, stride, pad, dil, transposed, out_pad, groups)
    transposed = general and bool(args[6])
    groups = int((args[8] if general else args[6]) or 1)
    if transposed:
        ctx.freeze_layout([*x, *w], "transposed convolution")
        return ctx.fresh(node, "transposed convolution")
    out = [x[0], w[0]] + [ctx.new_axis(n, "spatial axis") for n in ctx.shape(node)[2:]]
    ctx.freeze_layout(w[2:], "convolution kernel window")
    channels, out_channels = ctx.shape(node.args[0])[1], ctx.shape(node.args[1])[0]
    if groups == 1:
        ctx.unify(x[1], w[1])
    elif groups == channels == out_channels:
        ctx.unify(x[1], w[0])
    else:
        ctx.freeze_layout([x[1], w[0], w[1]], f"grouped convolution ({groups} groups)")
    if args[2] is not None:
        _bias(ctx, args[2], w[0])
    return out


def _matmul_layout(ctx, a, b, node, left, right):
    """Batch axes (aligned from the right) coupled; a[-1] ~ b[-2]; result [..., a[-2], b[-1]]."""
    sa, sb = ctx.shape(left), ctx.shape(right)
    if len(sa) == 1 or len(sb) == 1:
        if len(sa) == 1 and len(sb) == 1:
            ctx.unify(a[0], b[0])
            return []
        if len(sa) == 1:
            ctx.unify(a[0], b[-2])
            return [*b[:-2], b[-1]]
        ctx.unify(a[-1], b[0])
        return a[:-1]
    ctx.unify(a[-1], b[-2])
    batch = ctx.broadcast_layouts([a[:-2], b[:-2]], ctx.shape(node)[:-2])
    return [*batch, a[-2], b[-1]]


@register_rule("aten.matmul", "aten.mm", "aten.bmm")
def matmul(ctx, node):
    return _matmul_layout(ctx, ctx.layout(node.args[0]), ctx.layout(node.args[1]), node, node.args[0], node.args[1])


@register_rule("aten.addmm")
def addmm(ctx, node):
    """``bias + x @ W`` (GPT-2's Conv1D: the weight is ``[in, out]``)."""
    out = _matmul_layout(ctx, ctx.layout(node.args[1]), ctx.layout(node.args[2]), node, node.args[1], node.args[2])
    bias = ctx.layout(node.args[0])
    if isinstance(bias, list) and bias and ctx.shape(node.args[0])[-1] == ctx.shape(node)[-1]:
        ctx.unify(bias[-1], out[-1])
    return out


@register_rule("aten.embedding")
def embedding(ctx, node):
    """Rows of W are the vocabulary (never pruned: they are indexed by the input); W[1] is the width."""
    w, ids = ctx.layout(node.args[0]), ctx.layout(node.args[1])
    ctx.table.freeze(w[0], "embedding vocabulary")
    return [*ids, w[1]]


@register_rule("aten.batch_norm", "aten._native_batch_norm_legit_no_training", "aten.native_batch_norm",
               "aten._native_batch_norm_legit", "aten.instance_norm")
def batch_norm(ctx, node):
    """Per-channel statistics and affine parameters follow the channel axis (dim 1): exact to prune."""
    x = ctx.layout(node.args[0])
    for arg in node.args[1:5]:
        layout = ctx.layout(arg)
        if isinstance(layout, list) and layout:
            ctx.unify(layout[0], x[1])
    out = list(x)
    if op_name(node.target) in ("aten.batch_norm", "aten.instance_norm"):
        return out
    return [out] + [ctx.fresh(v, "batch statistics") for v in ctx.val(node)[1:]]


@register_rule("aten.layer_norm", "aten.rms_norm")
def layer_norm(ctx, node):
    """The normalised trailing axes follow the weight and bias, and are *mixed* (statistics over them)."""
    x = ctx.layout(node.args[0])
    dims = len(node.args[1])
    for arg in node.args[2:4]:
        layout = ctx.layout(arg)
        if isinstance(layout, list):
            for a, b in zip(layout, x[-dims:]):
                ctx.unify(a, b)
    for space in x[-dims:]:
        ctx.table.mix(space, "normalised by a LayerNorm/RMSNorm over it")
    return list(x)


@register_rule("aten.group_norm")
def group_norm(ctx, node):
    """Channels follow weight and bias; with fewer groups than channels they are mixed."""
    x = ctx.layout(node.args[0])
    groups = int(node.args[1]) if len(node.args) > 1 else 1
    for arg in node.args[2:4]:
        layout = ctx.layout(arg)
        if isinstance(layout, list) and layout:
            ctx.unify(layout[0], x[1])
    if groups != ctx.shape(node.args[0])[1]:
        ctx.table.mix(x[1], f"normalised in {groups} groups by a GroupNorm")
    return list(x)
