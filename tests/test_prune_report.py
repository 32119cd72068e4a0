"""sparsity_report: hand-computed counts and FLOPs on toy models."""

import json

import pytest
import torch
from torch import nn

from prunekit.errors import ConfigError
from prunekit.prune import Mask, prune_model, sparsity_report


def toy():
    """Conv(1->2, 3x3) on 6x6 -> 2x4x4 = 32 features -> Linear(32, 3)."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(32, 3))
    with torch.no_grad():
        model[0].weight.copy_(torch.arange(1.0, 19.0).reshape(2, 1, 3, 3))
        model[0].weight[0] = 0  # filter 0 dead: 9 nonzero left
        model[3].weight.copy_(torch.arange(96.0).reshape(3, 32))  # entry 0 is zero
        model[3].weight[1] = 0  # unit 1 dead: 96 - 1 - 32 = 63 nonzero
    return model


def test_counts_and_flops_by_hand():
    report = sparsity_report(toy(), input_shape=(1, 1, 6, 6))
    conv, fc = report.rows
    assert (conv.name, conv.type, conv.shape) == ("0", "Conv2d", (2, 1, 3, 3))
    assert (conv.params, conv.nonzero, conv.units, conv.live_units) == (18, 9, 2, 1)
    assert (conv.dense_flops, conv.effective_flops) == (2 * 18 * 16, 2 * 9 * 16)
    assert (fc.name, fc.type, fc.shape) == ("3", "Linear", (3, 32))
    assert (fc.params, fc.nonzero, fc.units, fc.live_units) == (96, 63, 3, 2)
    assert (fc.dense_flops, fc.effective_flops) == (2 * 32 * 3, 2 * 63)
    t = report.total
    assert (t.params, t.nonzero, t.units, t.live_units) == (114, 72, 5, 3)
    assert (t.dense_flops, t.effective_flops) == (576 + 192, 288 + 126)
    assert t.sparsity == pytest.approx(100 * 42 / 114)


def test_conv_output_size_with_stride_padding_and_batch():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.Flatten(), nn.Linear(4 * 14 * 14, 10))
    report = sparsity_report(model, input_shape=(3, 1, 28, 28))  # FLOPs are per sample
    assert report.rows[0].dense_flops == 2 * 36 * 14 * 14
    assert report.rows[1].dense_flops == 2 * 784 * 10


def test_mask_is_applied_virtually():
    model = toy()
    with torch.no_grad():
        model[0].weight[0] = 1.0  # dense conv
    mask = Mask({"0.weight": torch.tensor([True, False]).reshape(2, 1, 1, 1).expand(2, 1, 3, 3).clone()})
    row = sparsity_report(model, mask, input_shape=(1, 1, 6, 6)).rows[0]
    assert (row.nonzero, row.live_units, row.effective_flops) == (9, 1, 2 * 9 * 16)
    assert int(torch.count_nonzero(model[0].weight)) == 18  # model untouched


def test_after_unit_pruning_and_modes_restored():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    mask = prune_model(model, "unit", 25.0)
    model.train()
    report = sparsity_report(model, mask, input_shape=(1, 10))  # BN1d with batch 1 needs eval
    assert model.training and model[1].training
    assert [r.live_units for r in report.rows] == [6, 3]
    assert report.rows[0].nonzero == 60


def test_to_dict_and_table():
    report = sparsity_report(toy(), input_shape=(1, 1, 6, 6))
    d = json.loads(json.dumps(report.to_dict()))
    assert d["total"]["params"] == 114 and d["rows"][0]["shape"] == [2, 1, 3, 3]
    assert d["rows"][1]["sparsity"] == pytest.approx(100 * 33 / 96)
    table = report.format_table()
    lines = table.splitlines()[:-1]  # the last line explains the two totals
    assert len({len(line) for line in lines}) == 1  # aligned
    assert lines[0].split()[:3] == ["layer", "type", "shape"]
    assert "total" in lines[-1] and "1/2" in table and "2x1x3x3" in table and "50.00" in table


def test_bad_input_shape_and_no_layers():
    with pytest.raises(ConfigError, match=r"\[1, 5\]"):
        sparsity_report(toy(), input_shape=(1, 5))
    with pytest.raises(ConfigError, match="no nn.Linear"):
        sparsity_report(nn.Sequential(nn.ReLU()), input_shape=(1, 3))
