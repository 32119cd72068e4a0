"""What the tracer finds: coupled groups across residual adds, concatenations, depthwise convs,
flatten, attention heads with grouped-query attention, tied weights; and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import prunekit
from prunekit.errors import CheckpointError, TraceError
from prunekit.structure import trace

from zoo import build


def members(group):
    return {(m.name, m.axis) for m in group.members}


def test_residual_add_couples_the_shortcut_and_the_block_output():
    model, example, _ = build("residual_cnn")
    structure = trace(model, example)
    stage2 = next(g for g in structure.groups if ("shortcut.weight", 0) in members(g))
    assert {("b2.weight", 0), ("bn4.weight", 0), ("bn_sc.weight", 0), ("fc.weight", 1)} <= members(stage2)
    stage1 = next(g for g in structure.groups if ("stem.weight", 0) in members(g))
    assert {("a2.weight", 0), ("a1.weight", 1), ("b1.weight", 1), ("shortcut.weight", 1)} <= members(stage1)
    assert ("bn0.running_mean", 0) in members(stage1)  # BatchNorm statistics follow their channels


def test_concat_offsets_depthwise_and_chunk():
    model, example, _ = build("concat_depthwise_cnn")
    groups = {g.name: g for g in trace(model, example).groups}
    left, right = groups["left"], groups["right"]
    depthwise = next(m for m in left.members if m.name == "depthwise.weight")
    assert depthwise.units.tolist() == list(range(6)) + [-1] * 10  # the first 6 of the 16 concatenated channels
    assert next(m for m in right.members if m.name == "depthwise.weight").units.tolist() == [-1] * 6 + list(range(10))
    glu = groups["pointwise"]  # chunk(2) then a * sigmoid(b): channel i goes with channel i + 12
    assert next(m for m in glu.members if m.name == "pointwise.weight").units.tolist() == list(range(12)) * 2
    fc = next(m for m in groups["head_conv"].members if m.name == "fc.weight")
    assert fc.axis == 1 and fc.units.tolist() == np.repeat(np.arange(4), 16).tolist()  # flatten: 16 columns per channel


def test_attention_heads_and_grouped_query_attention():
    pytest.importorskip("transformers")
    model, example, _ = build("hf_llama_gqa")  # 4 query heads, 2 key/value heads, head_dim 16
    structure = trace(model, example)
    heads = [g for g in structure.groups if g.kind == "heads"]
    assert len(heads) == 2 and all(g.size == 2 and g.compactable and g.exact for g in heads)
    layer0 = heads[0]
    q = next(m for m in layer0.members if m.name == "model.layers.0.self_attn.q_proj.weight")
    k = next(m for m in layer0.members if m.name == "model.layers.0.self_attn.k_proj.weight")
    assert q.units.tolist() == [0] * 32 + [1] * 32  # one key/value head goes with its 2 query heads
    assert k.units.tolist() == [0] * 16 + [1] * 16
    width = structure.groups[0]
    assert not width.exact and "reduced" in width.note  # RMSNorm mixes the residual width


def test_gpt2_conv1d_orientation_and_the_tied_head():
    pytest.importorskip("transformers")
    model, example, _ = build("hf_gpt2")
    structure = trace(model, example)
    mlp = next(g for g in structure.groups if g.name == "transformer.h.0.mlp.c_fc")
    assert {("transformer.h.0.mlp.c_fc.weight", 1), ("transformer.h.0.mlp.c_proj.weight", 0)} <= members(mlp)
    width = structure.groups[0]
    tied = next(m for m in width.members if "lm_head.weight" in m.names)
    assert set(tied.names) == {"transformer.wte.weight", "lm_head.weight"} and tied.axis == 1
    mask = prunekit.prune_model(model, "unit", 50.0, example_inputs=example)
    small = prunekit.compact(model, mask, example_inputs=example).model
    assert small.lm_head.weight is small.transformer.wte.weight  # the tie survives
    assert small.transformer.h[0].attn.split_size == 16  # the attribute behind split(x, 32) follows


def test_outputs_are_never_pruned_and_layer_patterns_choose_groups():
    model, example, _ = build("residual_cnn")
    mask = prunekit.prune_model(model, "unit", 90.0, example_inputs=example, layers=["a1", "b1"])
    assert "fc.weight" not in mask and "stem.weight" not in mask
    assert int((~mask["a1.weight"].any((1, 2, 3))).sum()) == round(0.9 * 16)
    with pytest.raises(prunekit.ConfigError, match="matches no prunable group; groups: stem, a1, b1, b2"):
        prunekit.prune_model(model, "unit", 50.0, example_inputs=example, layers=["conv*"])


def test_global_scope_ranks_units_across_groups_and_keeps_one_per_group():
    model, example, _ = build("residual_cnn")
    structure = trace(model, example)
    mask = prunekit.prune_model(model, "unit", 50.0, example_inputs=example, scope="global")
    pruned = {}
    for g in structure.groups:  # BatchNorm weights are 1-D: each belongs to exactly one group
        bn = next(m for m in g.parameters if m.name.startswith("bn") and m.name.endswith(".weight"))
        pruned[g.name] = int((~mask[bn.name]).sum()) if bn.name in mask else 0
    assert sum(pruned.values()) == round(0.5 * sum(g.size for g in structure.groups))
    assert all(pruned[g.name] < g.size for g in structure.groups)  # no group loses all its units


def test_masks_only_shrink_across_rounds():
    model, example, _ = build("concat_depthwise_cnn")
    first = prunekit.prune_model(model, "unit", 30.0, example_inputs=example)
    second = prunekit.prune_model(model, "unit", 60.0, example_inputs=example, mask=first)
    assert all(not (second[n] & ~first[n]).any() for n in first)


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

    def forward(self, x):
        if x.sum() > 0:
            return self.a(x)
        return self.b(x)


def test_untraceable_models_and_wrong_inputs_are_clear_errors():
    with pytest.raises(TraceError, match=r"DataDependent.forward at .*test_structure_groups.py:\d+ `if x.sum\(\) > 0:`: "
                                         r"it branches on tensor values"):
        trace(DataDependent(), torch.randn(2, 4))
    model, _, _ = build("residual_cnn")
    with pytest.raises(TraceError, match="cannot trace ResidualCNN with the example inputs given"):
        trace(model, torch.randn(2, 5, 16, 16))
    with pytest.raises(TraceError, match="example_inputs is empty"):
        trace(model, ())


def test_a_plan_for_another_model_and_a_foreign_mask_are_refused(tmp_path):
    model, example, _ = build("residual_cnn")
    result = prunekit.compact(model, prunekit.prune_model(model, "unit", 50.0, example_inputs=example),
                              example_inputs=example)
    folder = result.save(tmp_path / "small")
    other, _, _ = build("concat_depthwise_cnn")
    before = {n: p.clone() for n, p in other.state_dict().items()}
    with pytest.raises(CheckpointError, match="does not have|does not fit"):
        prunekit.load_compacted(other, folder)
    assert all(torch.equal(before[n], t) for n, t in other.state_dict().items())  # untouched
    with pytest.raises(CheckpointError, match="has shape .* but the model's parameter has shape"):
        prunekit.compact(other, result.model.state_dict() and prunekit.prune_model(build("residual_cnn")[0], "weight",
                                                                                      50.0), example_inputs=example)


def test_an_unknown_op_freezes_its_axes_and_is_reported():
    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 8), nn.Linear(8, 2)

        def forward(self, x):
            return self.b(torch.special.bessel_j0(self.a(x)))

    structure = trace(Custom(), torch.randn(2, 4))
    assert structure.groups == [] and structure.unknown_ops[0][0] == "aten.special_bessel_j0"
    assert "aten.special_bessel_j0" in structure.format()
    from prunekit.structure import register_rule, STRUCTURE_RULES

    register_rule("aten.special_bessel_j0")(lambda ctx, node: ctx.layout(node.args[0]))
    try:
        assert [g.name for g in trace(Custom(), torch.randn(2, 4)).groups] == ["a"]
    finally:
        STRUCTURE_RULES._items.pop("aten.special_bessel_j0")
