"""Selection and scores: exact counts, determinism, monotone masks, ties, bad settings."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from prunekit.errors import ConfigError
from prunekit.prune.scores import CRITERIA, get_criterion, magnitude, random_scores, unit_l2
from prunekit.prune.select import check_sparsity, global_keep_masks, keep_mask

shapes = st.lists(st.integers(1, 7), min_size=1, max_size=3).map(tuple)
percent = st.floats(0.0, 100.0, exclude_max=True, allow_nan=False)


def scores_for(shape, seed, ties):
    g = torch.Generator().manual_seed(seed)
    if ties:  # few distinct values: many ties
        return torch.randint(0, 3, shape, generator=g).float()
    return torch.rand(shape, generator=g)


@settings(max_examples=60, deadline=None)
@given(shapes, percent, st.integers(0, 2**31), st.booleans())
def test_exact_count_and_determinism(shape, k, seed, ties):
    s = scores_for(shape, seed, ties)
    keep = keep_mask(s, k)
    assert keep.dtype == torch.bool and keep.shape == s.shape
    assert int((~keep).sum()) == round(k / 100 * s.numel())
    assert torch.equal(keep, keep_mask(s.clone(), k))
    if keep.any() and (~keep).any():  # every pruned score <= every kept score
        assert s[~keep].max() <= s[keep].min()


@settings(max_examples=60, deadline=None)
@given(shapes, percent, percent, st.integers(0, 2**31), st.booleans())
def test_masks_only_shrink(shape, k1, k2, seed, ties):
    lo, hi = sorted((k1, k2))
    first = keep_mask(scores_for(shape, seed, ties), lo)
    new_scores = scores_for(shape, seed + 1, ties)  # scores change between rounds
    second = keep_mask(new_scores, hi, previous=first)
    assert not (second & ~first).any(), "a pruned entry regrew"
    assert int((~second).sum()) == round(hi / 100 * new_scores.numel())
    # A lower target never regrows: the previous mask is returned unchanged.
    assert torch.equal(keep_mask(new_scores, lo, previous=second), second)


@settings(max_examples=40, deadline=None)
@given(st.lists(shapes, min_size=1, max_size=4), percent, st.integers(0, 2**31))
def test_global_counts_and_slicing(shape_list, k, seed):
    scores = {f"t{i}": scores_for(sh, seed + i, False) for i, sh in enumerate(shape_list)}
    masks = global_keep_masks(scores, k)
    assert list(masks) == list(scores)
    assert all(masks[n].shape == scores[n].shape for n in scores)
    n = sum(s.numel() for s in scores.values())
    assert sum(int((~m).sum()) for m in masks.values()) == round(k / 100 * n)
    flat = torch.cat([scores[n].reshape(-1) for n in scores])
    flat_keep = torch.cat([masks[n].reshape(-1) for n in scores])
    assert torch.equal(flat_keep, keep_mask(flat, k))


def test_global_previous_missing_names_mean_all_kept():
    scores = {"a": torch.tensor([1.0, 2.0]), "b": torch.tensor([3.0, 4.0])}
    prev = {"b": torch.tensor([True, False])}
    masks = global_keep_masks(scores, 50.0, prev)
    assert masks["a"].tolist() == [False, True]
    assert masks["b"].tolist() == [True, False]


def test_ties_prune_lowest_flat_indices_first():
    s = torch.ones(4, 10)
    keep = keep_mask(s, 92.5)
    assert int((~keep).sum()) == 37
    assert (~keep).reshape(-1)[:37].all() and keep.reshape(-1)[37:].all()
    assert torch.equal(keep, keep_mask(torch.ones(4, 10), 92.5))


def test_previous_entries_rank_first_even_with_high_scores():
    s = torch.tensor([1.0, 2.0, 3.0, 100.0])
    prev = torch.tensor([True, True, True, False])
    assert keep_mask(s, 50.0, prev).tolist() == [False, True, True, False]


def test_exact_values_on_arange():
    keep = keep_mask(torch.arange(10.0).flip(0), 30.0)
    assert keep.tolist() == [True] * 7 + [False] * 3
    assert keep_mask(torch.arange(10), 0.0).all()  # integer scores, k = 0


@pytest.mark.parametrize("bad", [-1, 100, 150, 100.0, math.nan, math.inf, "50", None, True])
def test_bad_sparsity(bad):
    with pytest.raises(ConfigError) as err:
        check_sparsity(bad)
    assert "[0, 100)" in str(err.value) and repr(bad) in str(err.value)
    with pytest.raises(ValueError):  # ConfigError is a ValueError
        keep_mask(torch.ones(3), bad)


def test_previous_of_wrong_shape_is_rejected():
    with pytest.raises(ConfigError, match=r"shape \(3,\)"):
        keep_mask(torch.ones(3), 50.0, previous=torch.ones(4, dtype=torch.bool))


def test_scores():
    w = torch.tensor([[3.0, -4.0], [0.0, -1.0]])
    assert torch.equal(magnitude(w), w.abs())
    assert torch.allclose(unit_l2(w), torch.tensor([5.0, 1.0]))
    conv = torch.arange(24.0).reshape(2, 3, 2, 2)
    assert torch.allclose(unit_l2(conv), conv.reshape(2, -1).norm(dim=1))
    a = random_scores(w, torch.Generator().manual_seed(1))
    b = random_scores(w, torch.Generator().manual_seed(1))
    assert a.shape == w.shape and torch.equal(a, b) and ((a >= 0) & (a < 1)).all()


def test_criterion_registry():
    assert get_criterion("unit_l2") is unit_l2
    assert set(CRITERIA) >= {"magnitude", "unit_l2", "random"}
    with pytest.raises(ConfigError) as err:
        get_criterion("hessian")
    assert "'hessian'" in str(err.value) and "magnitude" in str(err.value)
