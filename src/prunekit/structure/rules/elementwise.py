"""Rules of element-wise ops, reductions, pooling and padding."""

from __future__ import annotations

from .registry import register_rule

UNARY = (
    "aten.relu", "aten.relu_", "aten.gelu", "aten.gelu_", "aten.silu", "aten.silu_", "aten.sigmoid", "aten.sigmoid_",
    "aten.tanh", "aten.tanh_", "aten.hardtanh", "aten.hardtanh_", "aten.hardswish", "aten.hardswish_",
    "aten.hardsigmoid", "aten.hardsigmoid_", "aten.leaky_relu", "aten.leaky_relu_", "aten.elu", "aten.elu_",
    "aten.relu6", "aten.mish", "aten.softplus", "aten.neg", "aten.abs", "aten.exp", "aten.log", "aten.sqrt",
    "aten.rsqrt", "aten.reciprocal", "aten.square", "aten.sin", "aten.cos", "aten.erf", "aten.sign",
    "aten.pow", "aten.clamp", "aten.clamp_", "aten.clamp_min", "aten.clamp_max", "aten.dropout", "aten.dropout_",
    "aten.feature_dropout", "aten.alpha_dropout", "aten.alias", "aten.clone", "aten.contiguous", "aten.to",
    "aten._to_copy", "aten.detach", "aten.lift_fresh_copy", "aten.type_as", "aten.float",
)
BINARY = (
    "aten.add", "aten.add_", "aten.sub", "aten.sub_", "aten.rsub", "aten.mul", "aten.mul_", "aten.div", "aten.div_",
    "aten.maximum", "aten.minimum", "aten.where", "aten.lerp", "aten.masked_fill", "aten.masked_fill_",
    "aten.addcmul", "aten.addcdiv", "aten.copy_", "aten.fmod", "aten.remainder", "aten.atan2",
)
REDUCTIONS = (
    "aten.mean", "aten.sum", "aten.amax", "aten.amin", "aten.var", "aten.std", "aten.norm", "aten.logsumexp",
    "aten.prod", "aten.var_mean", "aten.std_mean",
)
SOFTMAX = ("aten.softmax", "aten._softmax", "aten.log_softmax", "aten._log_softmax", "aten.cumsum")
POOLS = (
    "aten.max_pool1d", "aten.max_pool2d", "aten.max_pool3d", "aten.avg_pool1d", "aten.avg_pool2d",
    "aten.avg_pool3d", "aten.adaptive_avg_pool1d", "aten.adaptive_avg_pool2d", "aten.adaptive_avg_pool3d",
    "aten.adaptive_max_pool1d", "aten.adaptive_max_pool2d", "aten.max_pool2d_with_indices", "aten.upsample_nearest2d",
    "aten.upsample_bilinear2d", "aten.upsample_nearest1d",
)


@register_rule(*UNARY)
def unary(ctx, node):
    """Each output index depends on the same input index: every axis is kept."""
    if not ctx.is_float(node.args[0]):
        return ctx.fresh(node, "not a float tensor")
    return ctx.broadcast([a for a in node.args if _tensor(ctx, a)], node)


@register_rule(*BINARY)
def binary(ctx, node):
    """Broadcasting element-wise ops couple the operands' axes of the output's size."""
    operands = [a for a in (*node.args, *node.kwargs.values()) if _tensor(ctx, a)]
    return ctx.broadcast(operands, node)


def _tensor(ctx, value) -> bool:
    layout = ctx.layout(value)
    return isinstance(layout, list) and all(isinstance(x, int) for x in layout)


def _dims(node, ctx) -> list[int]:
    rank = len(ctx.shape(node.args[0]))
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    if dims is None or dims == []:
        return list(range(rank))
    dims = [dims] if isinstance(dims, int) else list(dims)
    return [d % rank for d in dims]


@register_rule(*REDUCTIONS)
def reduction(ctx, node):
    """Reduced axes are mixed (their indices are combined); kept axes pass through."""
    x = ctx.layout(node.args[0])
    if not _tensor(ctx, node.args[0]) or not ctx.is_float(node.args[0]):
        return ctx.fresh(node, "reduction of a non-float tensor")
    dims = _dims(node, ctx)
    for d in dims:
        ctx.table.mix(x[d], "reduced by a sum/mean/norm over it")
    keep = node.kwargs.get("keepdim", node.args[2] if len(node.args) > 2 and isinstance(node.args[2], bool) else False)
    out = []
    for axis, space in enumerate(x):
        if axis not in dims:
            out.append(space)
        elif keep:
            out.append(ctx.new_axis(1))
    if isinstance(ctx.val(node), (tuple, list)):
        return [out for _ in ctx.val(node)]
    return out


@register_rule(*SOFTMAX)
def softmax(ctx, node):
    """The normalised axis is mixed; every axis is kept."""
    x = ctx.layout(node.args[0])
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", -1)
    ctx.table.mix(x[dim], "normalised by a softmax over it")
    return list(x)


@register_rule(*POOLS)
def pool(ctx, node):
    """Channels (and batch) pass through; the pooled spatial axes (the last 1, 2 or 3) are new."""
    x = ctx.layout(node.args[0])
    name = str(node.target)
    k = 3 if "3d" in name else 2 if "2d" in name else 1
    val = ctx.val(node)
    shape = tuple((val[0] if isinstance(val, (tuple, list)) else val).shape)
    out = list(x[: len(x) - k]) + [ctx.new_axis(n, "spatial axis") for n in shape[len(x) - k:]]
    if isinstance(val, (tuple, list)):
        return [out, ctx.fresh(val[1], "pooling indices")]
    return out


@register_rule("aten.pad", "aten.constant_pad_nd", "aten.reflection_pad2d", "aten.replication_pad2d")
def pad(ctx, node):
    """Padded axes get new indices (frozen); the others pass through."""
    x = ctx.layout(node.args[0])
    pads = list(node.args[1])
    out = list(x)
    for i in range(len(pads) // 2):
        axis = len(x) - 1 - i
        if pads[2 * i] or pads[2 * i + 1]:
            ctx.table.freeze(x[axis], "padded")
            out[axis] = ctx.new_axis(ctx.shape(node)[axis], "padded axis")
    return out
