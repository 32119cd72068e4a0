import pytest
import torch
from torch import nn

from prunekit.errors import ConfigError
from prunekit.models import get_model
from prunekit.training import Callback, TrainConfig, evaluate, lr_factor, train

QUICK = TrainConfig(epochs=2, batch_size=100, lr=0.1)


def test_short_training_learns_well_above_chance(mnist_slice):
    (x, y), (xt, yt) = mnist_slice
    model = get_model("lenet300", seed=0)
    before = evaluate(model, xt, yt)["accuracy"]
    history = train(model, (x, y), QUICK, progress=False)
    after = evaluate(model, xt, yt)["accuracy"]
    assert before < 0.3
    assert after > 0.85
    assert len(history) == 2 and history[0]["loss"] > 0 and history[0]["seconds"] > 0


def test_same_seed_same_weights_other_seed_other_weights(mnist_slice):
    (x, y), _ = mnist_slice
    x, y = x[:2000], y[:2000]

    def run(seed):
        model = get_model("lenet300", seed=0)
        train(model, (x, y), TrainConfig(epochs=1, batch_size=100, seed=seed), progress=False)
        return model

    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.fc1.weight, c.fc1.weight)


def test_callbacks_see_every_step_and_can_stop_training():
    x, y = torch.randn(100, 1, 28, 28), torch.randint(0, 10, (100,))

    class Recorder(Callback):
        def __init__(self):
            self.steps, self.epochs = [], 0

        def on_step_end(self, state):
            self.steps.append(state.step)
            state.stop = state.step == 7

        def on_epoch_end(self, state):
            self.epochs += 1

    rec = Recorder()
    train(get_model("lenet300"), (x, y), TrainConfig(epochs=5, batch_size=10), callbacks=[rec], progress=False)
    assert rec.steps == list(range(1, 8))
    assert rec.epochs == 1


def test_fractional_epochs_and_custom_loss():
    x, y = torch.randn(100, 1, 28, 28), torch.randint(0, 10, (100,))
    calls = []

    def loss_fn(outputs, batch):
        calls.append(batch.size)
        return nn.functional.cross_entropy(outputs, batch.labels)

    train(get_model("lenet300"), (x, y), TrainConfig(epochs=0.5, batch_size=10), loss_fn=loss_fn, progress=False)
    assert calls == [10] * 5


def test_any_user_module_trains_and_evaluates():
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    x = torch.randn(200, 1, 28, 28)
    y = (x.flatten(1)[:, 0] > 0).long()  # learnable rule
    train(model, (x, y), TrainConfig(epochs=20, batch_size=50, lr=0.1), progress=False)
    assert evaluate(model, x, y)["accuracy"] > 0.9


def test_lr_schedule_warms_up_then_anneals_to_zero():
    cfg = TrainConfig(lr_schedule="onecycle", warmup_fraction=0.2)
    values = [lr_factor(cfg, s, 100) for s in range(101)]
    assert values[0] < 0.1 and max(values) == pytest.approx(1.0, abs=1e-6)
    assert values.index(max(values)) == 20 and values[100] == pytest.approx(0.0, abs=1e-9)
    assert lr_factor(TrainConfig(lr_schedule="constant"), 50, 100) == 1.0


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 0}, "epochs must be a positive number"),
    ({"batch_size": 0}, "batch_size must be a positive integer"),
    ({"lr": -1}, "lr must be a positive number"),
    ({"optimizer": "rmsprop"}, "unknown optimizer 'rmsprop'; choose one of sgd, adam"),
    ({"lr_schedule": "step"}, "unknown lr_schedule 'step'"),
])
def test_bad_recipes_are_rejected_with_a_clear_message(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**kwargs)
