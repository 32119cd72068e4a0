"""Rule of ``scaled_dot_product_attention``: heads of queries, keys and values are coupled (with
grouped-query attention, one key/value head with all the query heads that share it)."""

from __future__ import annotations

from .registry import register_rule


@register_rule("aten.scaled_dot_product_attention")
def sdpa(ctx, node):
    """q [..., Hq, L, E], k [..., Hk, S, E], v [..., Hk, S, Ev] -> out [..., Hq, L, Ev].

    Heads: q ~ k ~ v, or, when ``Hq = n * Hk`` (``enable_gqa``), q's head axis is refined as
    ``Hk x n`` with the key/value head outer. E: q ~ k; Ev: v ~ out; S: k ~ v (mixed by the softmax).
    """
    q, k, v = (ctx.layout(a) for a in node.args[:3])
    hq, hk = ctx.shape(node.args[0])[-3], ctx.shape(node.args[1])[-3]
    batch = ctx.broadcast_layouts([q[:-3], k[:-3], v[:-3]], ctx.shape(node)[:-3])
    ctx.unify(k[-3], v[-3])
    ctx.head_axes += [q[-3], k[-3]]
    if hq == hk:
        ctx.unify(q[-3], k[-3])
    elif hq % hk == 0:
        ctx.unify(q[-3], ctx.table.product([k[-3], ctx.new_axis(hq // hk, "query heads sharing a key/value head")]))
    else:
        ctx.freeze_layout([q[-3], k[-3]], "query and key/value head counts do not divide")
    ctx.unify(q[-1], k[-1])
    ctx.unify(k[-2], v[-2])
    ctx.table.mix(k[-2], "attended over by a softmax")
    mask = node.args[3] if len(node.args) > 3 else node.kwargs.get("attn_mask")
    if mask is not None and isinstance(ctx.layout(mask), list):
        scores = (*ctx.shape(node)[:-3], hq, ctx.shape(node)[-2], ctx.shape(node.args[1])[-2])
        ctx.broadcast_layouts([ctx.layout(mask), [*batch, q[-3], q[-2], k[-2]]], scores)
    return [*batch, q[-3], q[-2], v[-1]]
