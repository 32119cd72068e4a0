"""The whole path on a GPU: prune -> fine-tune -> compact -> export, with masks, a distillation teacher
and exports moving between devices. Runs only where CUDA is available (marked ``cuda``)."""

from __future__ import annotations

import pytest
import torch

import prunekit
from prunekit.schedules import Job, PruneSpec, Recovery, run_schedule
from prunekit.training import DistillConfig, TrainConfig, evaluate

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")]


def test_prune_finetune_distil_compact_and_export_on_a_gpu(mnist_slice, tmp_path):
    (x, y), (xt, yt) = mnist_slice
    model = prunekit.get_model("convnet", seed=0).to("cuda")
    prunekit.train(model, (x, y), TrainConfig(epochs=1, precision="bf16"), device="cuda", progress=False)
    recipe = Recovery(finetune=TrainConfig(epochs=1, lr=0.05, precision="fp16"), distill=DistillConfig())
    job = Job(model, (x, y), PruneSpec("unit"), recipe, progress=False)
    level = list(run_schedule("finetune", job, [50.0]))[-1]
    assert next(model.parameters()).is_cuda and evaluate(model, xt, yt)["accuracy"] > 0.5
    pruned = {n: p.detach() for n, p in model.named_parameters() if n in level.mask}
    assert all(not pruned[n][~m.cuda()].any() for n, m in level.mask.items())  # zeros held on the GPU
    result = prunekit.compact(model.cpu(), level.mask)
    folder = prunekit.save_checkpoint(tmp_path / "c", result.model, model_name=None, architecture=True)
    again = prunekit.load_checkpoint(folder).model  # loads on the CPU
    assert torch.allclose(again(xt[:8]), model.eval()(xt[:8]), atol=1e-4)
