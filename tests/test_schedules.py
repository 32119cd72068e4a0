"""Schedules on a small model and a data slice: exact sparsities, shrinking masks, the cubic
schedule, lottery rewinding, registry errors."""

import math

import pytest
import torch

from prunekit.errors import ConfigError
from prunekit.models import get_model
from prunekit.schedules import (SCHEDULES, GradualPruner, Job, PruneSpec, Recovery, cubic_sparsity, get_schedule,
                                plan_levels, planned_epochs, rewind_state, run_schedule)
from prunekit.training import Callback, TrainConfig, train

QUICK = TrainConfig(epochs=0.5, batch_size=200, lr=0.05, lr_schedule="cosine")
RECIPE = Recovery(finetune=QUICK, iterative=QUICK, gradual=TrainConfig(epochs=1, batch_size=200, lr=0.05),
                  lottery=QUICK, gradual_prunings=5)


@pytest.fixture(scope="module")
def trained(mnist_slice):
    """A lenet300 trained briefly on the slice, and its initial weights."""
    (x, y), _ = mnist_slice
    model = get_model("lenet300", seed=3)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    train(model, (x, y), TrainConfig(epochs=1, batch_size=200, seed=3), progress=False)
    return model, init


def job_for(trained, mnist_slice, method="weight", scope="layer", **kwargs):
    model, init = trained
    copy = get_model("lenet300")
    copy.load_state_dict(model.state_dict())
    return Job(copy, mnist_slice[0], PruneSpec(method, scope), RECIPE, rewind=init, progress=False, **kwargs)


def test_cubic_schedule_matches_the_formula_at_chosen_steps():
    s_i, s_f, t0, n, dt = 10.0, 90.0, 4, 8, 3
    for t in (4, 7, 10, 16, 25, 28):
        expected = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt)) ** 3
        assert cubic_sparsity(t, initial=s_i, final=s_f, start=t0, n=n, dt=dt) == pytest.approx(expected)
    assert cubic_sparsity(0, initial=s_i, final=s_f, start=t0, n=n, dt=dt) == s_i
    assert cubic_sparsity(100, initial=s_i, final=s_f, start=t0, n=n, dt=dt) == s_f


def test_gradual_pruner_prunes_every_dt_steps_along_the_cubic_and_ends_at_the_target(trained, mnist_slice):
    job = job_for(trained, mnist_slice)
    pruner = GradualPruner(job.spec, 80.0, n=4, end_fraction=0.5)
    train(job.model, job.train_data, TrainConfig(epochs=1, batch_size=200), callbacks=[pruner], progress=False)
    # 30 steps: t0 = 0, last pruning step before step 15, dt = 15 // 4 = 3
    assert (pruner.start, pruner.dt) == (0, 3)
    steps = [step for step, _ in pruner.applied]
    assert steps == [0, 3, 6, 9, 12]
    for step, sparsity in pruner.applied:
        assert sparsity == pytest.approx(80.0 * (1 - (1 - step / 12) ** 3))
    assert pruner.mask.sparsity() == pytest.approx(80.0, abs=0.01)
    assert int((job.model.fc1.weight == 0).sum()) >= round(0.8 * job.model.fc1.weight.numel())


@pytest.mark.parametrize("schedule", ["iterative", "lottery"])
@pytest.mark.parametrize("method,scope", [("weight", "layer"), ("weight", "global"), ("unit", "layer")])
def test_chained_levels_reach_the_planned_sparsity_and_masks_only_shrink(trained, mnist_slice, schedule, method, scope):
    job = job_for(trained, mnist_slice, method, scope)
    targets = [50.0, 90.0]
    plan = plan_levels(targets, RECIPE.round_fraction)
    levels, previous = [], None
    for level in run_schedule(schedule, job, targets):
        planned = plan[level.index - 1][0]
        assert level.sparsity == planned
        if method == "weight":
            assert level.mask.sparsity() == pytest.approx(planned, abs=0.01)
        else:  # units of fc1 and fc2: round(k% of 300) and round(k% of 100) rows are zero
            assert int((job.model.fc1.weight.abs().sum(1) == 0).sum()) == round(planned / 100 * 300)
            assert int((job.model.fc2.weight.abs().sum(1) == 0).sum()) == round(planned / 100 * 100)
            assert int((job.model.classifier.weight.abs().sum(1) == 0).sum()) == 0
        if previous is not None:
            for name, keep in level.mask.items():
                assert not (keep & ~previous[name]).any(), "a pruned entry came back"
        previous = level.mask
        levels.append(level)
    assert [lvl.sparsity for lvl in levels if lvl.recorded] == targets
    assert len(levels) == len(plan) == 3  # 0 -> 50 in one round, 50 -> 90 in two (0.6 per round at most)
    assert levels[-1].train_epochs == pytest.approx(3 * QUICK.epochs)
    assert planned_epochs(schedule, RECIPE, targets) == pytest.approx(3 * QUICK.epochs)


def test_plan_inserts_rounds_with_equal_ratios_of_remaining_weights():
    plan = plan_levels([0, 97.5], 0.5)
    sparsities = [s for s, _ in plan]
    assert [r for _, r in plan] == [True] + [False] * 5 + [True]
    remaining = [100 - s for s in sparsities[1:]]
    ratios = [b / a for a, b in zip([100] + remaining, remaining)]
    assert all(r == pytest.approx(ratios[0]) for r in ratios) and ratios[0] >= 0.5
    assert plan_levels([25, 50, 60], 0.6) == [(25.0, True), (50.0, True), (60.0, True)]


class Snapshot(Callback):
    """Records the model's weights when each training run begins."""

    def __init__(self):
        self.states = []

    def on_train_begin(self, state):
        self.states.append({k: v.detach().clone() for k, v in state.model.state_dict().items()})


def test_lottery_rewinds_surviving_weights_exactly_to_their_initial_values(trained, mnist_slice):
    snap = Snapshot()
    job = job_for(trained, mnist_slice, callbacks=(snap,))
    _, init = trained
    levels = list(run_schedule("lottery", job, [60.0, 84.0]))
    assert len(snap.states) == 2
    for level, state in zip(levels, snap.states):
        assert "classifier.weight" not in level.mask  # the output layer is left whole
        for name in ("fc1.weight", "fc2.weight"):
            keep = level.mask[name]
            assert torch.equal(state[name][keep], init[name][keep])
            assert (state[name][~keep] == 0).all()
        assert torch.equal(state["fc1.bias"], init["fc1.bias"])  # unpruned tensors rewind too


def test_rewind_state_rebuilds_the_initialisation_and_replays_early_training(mnist_slice):
    (x, y), _ = mnist_slice
    init = get_model("lenet300", seed=5).state_dict()
    assert all(torch.equal(v, init[k]) for k, v in rewind_state("lenet300", seed=5).items())
    config = TrainConfig(epochs=2, batch_size=500, seed=5)
    model = get_model("lenet300", seed=5)
    snaps = []

    class AtEpoch(Callback):
        def on_epoch_end(self, state):
            snaps.append({k: v.clone() for k, v in state.model.state_dict().items()})

    train(model, (x, y), config, callbacks=[AtEpoch()], progress=False)
    early = rewind_state("lenet300", seed=5, epoch=1, train_config=config, train_data=(x, y))
    assert all(torch.equal(v, snaps[0][k]) for k, v in early.items())


def test_independent_schedules_start_every_target_from_the_dense_weights(trained, mnist_slice):
    job = job_for(trained, mnist_slice)
    dense = job.model.fc1.weight.detach().clone()
    levels = []
    for level in run_schedule("oneshot", job, [30.0, 60.0]):
        levels.append(level.mask)
        kept = job.model.fc1.weight.detach()[level.mask["fc1.weight"]]
        assert torch.equal(kept, dense[level.mask["fc1.weight"]])
    assert levels[0]["fc1.weight"].sum() > levels[1]["fc1.weight"].sum()


def test_finetune_and_gradual_hold_the_mask_and_report_their_epochs(trained, mnist_slice):
    for name, epochs in (("finetune", QUICK.epochs), ("gradual", 1.0)):
        job = job_for(trained, mnist_slice, "unit", "layer")
        (level,) = run_schedule(name, job, [75.0])
        assert level.train_epochs == epochs
        dead = level.mask["fc1.weight"].any(1) == 0
        assert int(dead.sum()) == 225 and (job.model.fc1.weight[dead] == 0).all()


def test_unknown_schedule_is_a_clear_error_listing_the_valid_ones():
    with pytest.raises(ConfigError) as info:
        get_schedule("cyclic")
    message = str(info.value)
    assert "unknown schedule 'cyclic'" in message
    assert all(name in message for name in SCHEDULES)


def test_recipe_rejects_impossible_values():
    with pytest.raises(ConfigError, match="round_fraction"):
        Recovery(round_fraction=1.0)
    with pytest.raises(ConfigError, match="gradual_start"):
        Recovery(gradual_start=0.8, gradual_end=0.5)
    assert math.isclose(Recovery().train_config("lottery").lr, 0.1)


def test_a_chain_resumes_from_its_checkpoint_with_the_same_weights(trained, mnist_slice, tmp_path):
    targets = [50.0, 75.0, 90.0]
    whole = job_for(trained, mnist_slice, "unit")
    for _ in run_schedule("iterative", whole, targets):
        pass
    first = job_for(trained, mnist_slice, "unit")
    for level in run_schedule("iterative", first, targets, chain_dir=tmp_path, fingerprint="run"):
        if level.index == 2:
            break  # interrupted after two finished levels
    again = job_for(trained, mnist_slice, "unit")
    resumed = list(run_schedule("iterative", again, targets, chain_dir=tmp_path, fingerprint="run"))
    assert [lvl.index for lvl in resumed] == [2, 3]  # level 2 again (loaded), then only level 3 is trained
    assert resumed[-1].train_epochs == pytest.approx(3 * QUICK.epochs)
    for name, value in whole.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[name])
    other = job_for(trained, mnist_slice, "unit")
    assert [lvl.index for lvl in run_schedule("iterative", other, targets, chain_dir=tmp_path,
                                              fingerprint="another run")] == [1, 2, 3]


def test_a_diverging_recipe_is_a_clear_error_not_a_silent_result(trained, mnist_slice):
    recipe = Recovery(finetune=TrainConfig(epochs=0.5, batch_size=200, lr=1e6, lr_schedule="constant"))
    job = job_for(trained, mnist_slice)
    job.recipe = recipe
    with pytest.raises(ConfigError, match="training diverged during finetune 50%"):
        list(run_schedule("finetune", job, [50.0]))
