"""Distillation: the loss is Hinton et al.'s, and distilled fine-tuning moves the student toward the teacher."""

import pytest
import torch
import torch.nn.functional as F

from prunekit.training.distill import DistillConfig, Distiller, distillation_loss, soft_target_kl, teacher_logits
from prunekit.errors import ConfigError
from prunekit.models import get_model
from prunekit.schedules import Job, PruneSpec, Recovery, run_schedule
from prunekit.training import TrainConfig, train


def test_loss_is_alpha_t2_kl_plus_weighted_cross_entropy():
    torch.manual_seed(0)
    s, t, y = torch.randn(8, 10), torch.randn(8, 10), torch.randint(0, 10, (8,))
    T, alpha = 3.0, 0.7
    p_t = F.softmax(t / T, dim=1)
    kl = (p_t * (p_t.log() - F.log_softmax(s / T, dim=1))).sum(1).mean()
    expected = alpha * T * T * kl + (1 - alpha) * F.cross_entropy(s, y)
    got = distillation_loss(s, t, y, DistillConfig(temperature=T, alpha=alpha))
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    assert soft_target_kl(t, t, T).item() == pytest.approx(0.0, abs=1e-6)


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="temperature"):
        DistillConfig(temperature=0)
    with pytest.raises(ConfigError, match="alpha"):
        DistillConfig(alpha=1.5)


def test_precomputed_logits_are_looked_up_by_batch_index(mnist_slice):
    (x, y), _ = mnist_slice
    teacher = get_model("lenet300", seed=1)
    distiller = Distiller.from_teacher(teacher, x[:1000])
    seen = []

    def spy(outputs, batch):  # the precomputed logits of the batch's indices are the teacher's on its inputs
        seen.append(torch.allclose(distiller.logits[batch.indices], teacher.eval()(batch.args[0]), atol=1e-5))
        return distiller.loss_fn(outputs, batch)

    train(get_model("lenet300", seed=2), (x[:1000], y[:1000]), TrainConfig(epochs=1, batch_size=250),
          loss_fn=spy, progress=False)
    assert seen == [True] * 4


def test_a_dataloader_distils_from_the_teacher_model(mnist_slice):
    (x, y), _ = mnist_slice
    teacher = get_model("lenet300", seed=1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[:500], y[:500]), batch_size=100)
    distiller = Distiller.from_teacher(teacher, loader)
    assert distiller.logits is None and distiller.teacher is not teacher
    history = train(get_model("lenet300", seed=2), loader, TrainConfig(epochs=1), loss_fn=distiller.loss_fn,
                    progress=False)
    assert len(history) == 1 and history[0]["loss"] > 0


def test_distilled_recovery_ends_closer_to_the_teacher(mnist_slice):
    (x, y), (xt, _) = mnist_slice
    teacher = get_model("lenet300", seed=0)
    train(teacher, (x, y), TrainConfig(epochs=2, batch_size=200), progress=False)
    recipe = TrainConfig(epochs=1, batch_size=200, lr=0.01, lr_schedule="cosine")
    kls = {}
    for distill in (None, DistillConfig(temperature=4.0, alpha=1.0)):
        student = get_model("lenet300")
        student.load_state_dict(teacher.state_dict())
        job = Job(student, (x, y), PruneSpec("unit", "layer"), Recovery(finetune=recipe, distill=distill),
                  progress=False)
        list(run_schedule("finetune", job, [90.0]))
        with torch.no_grad():
            kls[distill is not None] = soft_target_kl(student(xt), teacher_logits(teacher, xt)).item()
    assert kls[True] < kls[False]
