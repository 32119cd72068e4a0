"""``round_to``: every pruned layer or traced group keeps a multiple of N units, from the API and every command."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from prunekit.checkpoint import load_checkpoint
from prunekit.cli import main
from prunekit.errors import ConfigError
from prunekit.prune import Pruner, PruneSpec


def kept(mask, name):
    return int(mask[f"{name}.weight"].any(1).sum())


def test_walked_and_traced_layers_keep_multiples_rounded_up():
    model = nn.Sequential(nn.Linear(16, 100), nn.ReLU(), nn.Linear(100, 30), nn.ReLU(), nn.Linear(30, 3))
    mask = Pruner(model, PruneSpec("unit", round_to=8)).prune(50.0)
    assert (kept(mask, "0"), kept(mask, "2")) == (56, 16)  # 50 -> 56, 15 -> 16
    mask = Pruner(model, PruneSpec("unit", round_to=8)).prune({"0": 90.0})
    assert (kept(mask, "0"), kept(mask, "2")) == (16, 30)  # 10 -> 16; a layer the plan leaves out stays whole
    traced = nn.Sequential(nn.Linear(8, 20), nn.ReLU(), nn.Linear(20, 6), nn.ReLU(), nn.Linear(6, 2))
    mask = Pruner(traced, PruneSpec("unit", round_to=8), example_inputs=torch.randn(2, 8)).prune(70.0)
    assert (kept(mask, "0"), kept(mask, "2")) == (8, 6)  # 6 -> 8; a group of at most 8 units stays whole


def test_round_to_rules_are_the_specs():
    for bad, message in (({"round_to": 0}, ">= 1"), ({"round_to": True}, ">= 1"),
                         ({"method": "weight", "round_to": 8}, "method='unit'"),
                         ({"scope": "global", "round_to": 8}, "scope='layer'")):
        with pytest.raises(ConfigError, match=message):
            PruneSpec(**{"method": "unit", **bad})


def test_every_command_takes_round_to(baseline, mnist_dir, tmp_path, capsys):
    data = ["--data-dir", str(mnist_dir), "--quiet"]
    out = tmp_path / "pruned"
    assert main(["prune", "--checkpoint", str(baseline), "--method", "unit", "--sparsity", "50", "--round-to", "16",
                 "--out", str(out), *data]) == 0
    ckpt = load_checkpoint(out)
    assert (kept(ckpt.mask, "fc1"), kept(ckpt.mask, "fc2")) == (160, 64) and ckpt.config["pruning"]["round_to"] == 16
    sweeps = {}
    for n in ("1", "16"):
        sweeps[n] = tmp_path / f"sweep{n}"
        assert main(["sweep", "--checkpoint", str(baseline), "--methods", "unit", "--sparsities", "50",
                     "--round-to", n, "--no-measure", "--out", str(sweeps[n]), *data]) == 0
    points = {n: json.loads((folder / "results.json").read_text())[-1] for n, folder in sweeps.items()}
    assert points["16"]["layer_sparsity"] == {"fc1": pytest.approx(100 * 140 / 300, abs=0.01), "fc2": 36.0}
    assert points["1"]["layer_sparsity"] == {"fc1": 50.0, "fc2": 50.0}
    assert points["1"]["config_id"] != points["16"]["config_id"]
    assert main(["bench", "latency", "--checkpoint", str(baseline), "--method", "unit", "--sparsity", "50",
                 "--round-to", "16", "--batch-sizes", "8", "--repeats", "1", "--json", str(tmp_path / "lat.json")]) == 0
    assert "160/300" in capsys.readouterr().out  # the live units of the benchmarked model
    assert main(["prune", "--checkpoint", str(baseline), "--sparsity", "50", "--round-to", "16",
                 "--out", str(tmp_path / "w"), *data]) == 2
    assert "method='unit'" in capsys.readouterr().err and not (tmp_path / "w").exists()
