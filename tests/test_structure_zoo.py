"""Structured pruning of any model: the test zoo (hand-written and Hugging Face architectures) is traced,
unit-pruned on coupled groups, compacted exactly, and rebuilt from a saved plan."""

from __future__ import annotations


import pytest
import torch

import prunekit
from prunekit.compact import load_compacted
from prunekit.compact.graph import outputs

from zoo import NAMES, build

pytest.importorskip("transformers")


def relative_difference(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    assert len(a) == len(b) and all(x.shape == y.shape for x, y in zip(a, b))
    return max(float((x - y).abs().max()) / max(1.0, float(x.abs().max())) for x, y in zip(a, b))


@pytest.fixture(scope="module", params=NAMES)
def pruned(request):
    """(name, masked model, mask, compaction result, example inputs, fresh inputs, builder seed)."""
    model, example, fresh = build(request.param, seed=0)
    mask = prunekit.prune_model(model, "unit", 50.0, example_inputs=example)
    result = prunekit.compact(model, mask, example_inputs=example)
    return request.param, model, mask, result, example, fresh


def test_compacted_equals_masked_on_example_and_fresh_inputs(pruned):
    name, model, mask, result, example, fresh = pruned
    assert type(result.model) is type(model)
    assert relative_difference(outputs(model, example), outputs(result.model, example)) <= 1e-5
    assert relative_difference(outputs(model, fresh), outputs(result.model, fresh)) <= 1e-5  # other batch/length


def test_compacted_model_is_smaller_and_the_mask_is_coupled(pruned):
    name, model, mask, result, example, fresh = pruned
    before = sum(p.numel() for p in model.parameters())
    after = sum(p.numel() for p in result.model.parameters())
    assert after < 0.9 * before, (name, before, after)
    for group in result.structure.groups:  # every group's pruned units are pruned in all the tensors they own
        units = set()
        for member in group.parameters:
            keep = mask.get(member.name)
            if keep is None:
                continue
            alive = keep.movedim(member.axis, 0).reshape(keep.shape[member.axis], -1).any(1).numpy()
            dead = {int(u) for u, a in zip(member.units, alive) if u >= 0 and not a}
            units = dead if not units else units
            assert dead == units or not dead, (name, group.name)


def test_saved_plan_replays_on_a_fresh_instance(pruned, tmp_path):
    name, model, mask, result, example, fresh = pruned
    folder = result.save(tmp_path / name)
    rebuilt, _, _ = build(name, seed=123)  # other random weights: the saved ones must replace them
    load_compacted(rebuilt, folder)
    assert relative_difference(outputs(result.model, fresh), outputs(rebuilt, fresh)) == 0.0


def test_the_original_is_never_modified_by_compaction(pruned):
    name, model, mask, result, example, fresh = pruned
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    prunekit.compact(model, mask, example_inputs=example)
    assert {n: tuple(p.shape) for n, p in model.named_parameters()} == shapes
