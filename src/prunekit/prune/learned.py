"""Learned filter pruning: try-and-learn agents (Huang et al., WACV 2018).

For each group of units (a layer's filters, or a coupled group of a traced model), one after another,
a small agent reads every unit's filters and outputs its keep probability. Keep/prune actions are
sampled from those probabilities, applied to the model and scored on held-out batches with the
paper's reward::

    R(A) = psi(A, b) * log(C / kept)       while the accuracy drop is at most b,
    psi(A, b) = (b - drop(A)) / b           (1 with no drop, 0 at the bound b),

where ``C`` is the number of units and ``kept`` those the action keeps. The agent is trained with
REINFORCE (the round's rewards, normalised, as advantages). Its keep logits are the units' scores, so
``prune_model``'s sparsity decides how many go, like every other criterion. Groups are pruned one
after another: after its agent is trained a group is pruned to the sparsity on a working copy of the
model, which is then fine-tuned for a few batches before the next group's agent starts.

Where this differs from the paper (documented, chosen to run on two CPU cores in minutes):

* **Agent**: a two-layer perceptron shared over a group's units (one row of standardised filter
  weights in, one logit out) plus a learned bias per unit, instead of a convolutional network over
  the whole layer; it starts by keeping each unit with probability ``initial_keep``.
* **Reward beyond the bound**: the paper multiplies the negative ``psi`` by the efficiency term
  too, which rewards keeping *more* units once the drop exceeds ``b``; here a drop beyond ``b`` gets
  ``psi`` alone (``(b - drop) / b < 0``), so every over-pruned action is ranked by how much it lost.
* **Baseline**: REINFORCE with a per-unit baseline from a linear critic of the earlier rounds'
  rewards (:func:`~prunekit.prune.learned_agent.per_unit_advantages`) instead of the round's mean. With the mean baseline a unit
  dropped beside an essential one shares its penalty and the efficiency term (about 1/C per unit)
  drowns: on a toy layer with half its units unread noise, agents with the paper's reward and the
  mean baseline kept a noise unit in 4 of 10 seeds after 240 evaluations; with both changes they
  drop exactly the noise units in 20 of 20 seeds after 160 (tests/test_learned.py).
* **Budget**: ``iterations`` x ``samples`` evaluations per group (default 20 x 8) on
  ``reward_batches`` held-out batches (default 2 x 128 samples), instead of training each agent to
  convergence; ``finetune_batches`` SGD steps between groups instead of an epoch.
* **Data**: the reward batches are the first calibration batches and the fine-tuning batches the
  next ones; the CLI passes the training set, so hold out a validation split if you can
  (``calibration=`` any data form).
* The sparsity (how many units go) is the caller's, so criteria compare at equal FLOPs; the paper
  lets ``b`` decide it.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from prunekit.prune import prune_model
    >>> from prunekit.prune.learned import LearnedConfig, learned_criterion
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    >>> x = torch.randn(256, 4); y = (x[:, 0] > 0).long()
    >>> quick = learned_criterion(LearnedConfig(iterations=3, samples=2, progress=False))
    >>> mask = prune_model(model, "unit", 50.0, criterion=quick, calibration=(x, y))
    >>> int(mask["0.weight"].any(dim=1).sum())
    3
"""

from __future__ import annotations

import copy
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..batches import as_source
from ..errors import ConfigError
from ..losses import LossFn, cross_entropy, logits_of
from .learned_agent import GroupAgent, LearnedConfig
from .scores import CRITERIA
from .select import keep_mask, sparsity_of
from .unit_criteria import UnitCriterion
from .units import UnitView


def learned_unit_scores(model: nn.Module, views: list[UnitView], data: Any, batches: int,
                        loss_fn: LossFn | None = None, sparsity: float = 0.0,
                        config: LearnedConfig = LearnedConfig()) -> list[Tensor]:
    """Every unit's learned keep logit, group after group (see the module docstring).

    ``model`` is left unchanged: agents act on a working copy. ``batches`` bounds the calibration
    batches read (reward batches first, then fine-tuning batches, cycled).
    """
    work = copy.deepcopy(model)
    device = next((p.device for p in work.parameters()), torch.device("cpu"))
    source = as_source(data, batch_size=128, seed=config.seed)
    held_out = _labelled_batches(source, config.reward_batches, device)
    tuning = _tuning_batches(source, config.reward_batches, batches, device)
    params = dict(work.named_parameters())
    scores = []
    bar = tqdm(views, desc="learned agents", unit="group", disable=None if config.progress else True, leave=False)
    for index, view in enumerate(bar):
        work.eval()
        agent = GroupAgent(view, params, config, index)
        scores.append(agent.learn(lambda keep: _accuracy_without(work, view, params, keep, held_out),
                                  _accuracy(work, held_out)))
        level = sparsity_of(sparsity, view.name)
        if level > 0 and index < len(views) - 1:  # the next agents see this group pruned
            _prune_view(view, params, keep_mask(scores[-1], level, _alive(view, params)))
            if config.finetune_batches:
                _finetune(work, tuning, config, loss_fn or cross_entropy())
    return scores


def _slice_positions(view: UnitView, dropped: np.ndarray):
    for s in view.slices:
        hit = np.nonzero(np.isin(s.units, dropped))[0]
        if len(hit):
            yield s, torch.from_numpy(hit)


@torch.no_grad()
def _accuracy_without(model: nn.Module, view: UnitView, params, keep: Tensor, held_out) -> float:
    """Held-out accuracy with the units ``keep`` marks False zeroed (parameters restored afterwards)."""
    saved = []
    for s, hit in _slice_positions(view, np.nonzero(~keep.numpy())[0]):
        tensor = params[s.name]
        hit = hit.to(tensor.device)
        saved.append((tensor, hit, s.axis, tensor.index_select(s.axis, hit).clone()))
        tensor.index_fill_(s.axis, hit, 0.0)
    try:
        return _accuracy(model, held_out)
    finally:
        for tensor, hit, axis, values in saved:
            tensor.index_copy_(axis, hit, values)


@torch.no_grad()
def _prune_view(view: UnitView, params, keep: Tensor) -> None:
    for s, hit in _slice_positions(view, np.nonzero(~keep.numpy())[0]):
        params[s.name].index_fill_(s.axis, hit.to(params[s.name].device), 0.0)


def _alive(view: UnitView, params) -> Tensor:
    """Units with any non-zero entry (a unit pruned before is all zeros)."""
    return view.rows(params).abs().sum(dim=1) > 0


@torch.no_grad()
def _accuracy(model: nn.Module, held_out) -> float:
    correct = total = 0
    for batch in held_out:
        logits = logits_of(model(*batch.args, **batch.kwargs))
        correct += int((logits.argmax(-1) == batch.labels).sum())
        total += batch.labels.numel()
    return correct / total


def _finetune(model: nn.Module, tuning, config: LearnedConfig, loss_fn: LossFn) -> None:
    """A few SGD steps on the working copy; every zero parameter entry stays zero."""
    params = [p for p in model.parameters() if p.requires_grad]
    zeros = [p.detach() == 0 for p in params]
    optimizer = torch.optim.SGD(params, lr=config.finetune_lr, momentum=0.9)
    model.train()
    for _ in range(config.finetune_batches):
        batch = next(tuning)
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(*batch.args, **batch.kwargs), batch).backward()
        optimizer.step()
        with torch.no_grad():
            for p, zero in zip(params, zeros):
                p.masked_fill_(zero, 0.0)
    model.zero_grad(set_to_none=True)
    model.eval()


def _labelled_batches(source, count: int, device) -> list:
    held = []
    for batch in source.epoch(0):
        if batch.labels is None:
            raise ConfigError("criterion 'learned' rewards accuracy: its calibration batches need labels")
        held.append(batch.to(device))
        if len(held) == count:
            return held
    if not held:
        raise ConfigError("the calibration data is empty")
    return held


def _tuning_batches(source, skip: int, limit: int, device):
    """The calibration batches after the reward batches, up to ``limit`` read in all (the reward batches
    themselves when there are no others), in a fixed order, cycled."""
    positions = range(skip, limit) if limit > skip else range(0)
    while True:
        taken = 0
        for position, batch in enumerate(source.epoch(0)):
            if position >= max(positions.stop, skip):
                break
            if position in positions or not positions:
                taken += 1
                yield batch.to(device)
        if not taken and positions:
            positions = range(0)  # the data ends with the reward batches: tune on those
        elif not taken:
            raise ConfigError("the calibration data is empty")


def learned_criterion(config: LearnedConfig = LearnedConfig()) -> UnitCriterion:
    """A ``learned`` criterion with the given hyper-parameters, to pass as ``criterion=``.

    Example:
        >>> learned_criterion(LearnedConfig(drop_bound=0.05, iterations=10)).name
        'learned'
    """
    return UnitCriterion("learned", needs_data=True, data_scores=partial(learned_unit_scores, config=config))


CRITERIA.register("learned", learned_criterion(),
                  description="learned filter pruning: REINFORCE agents per group, reward psi x log(C/kept) "
                              "(Huang et al. 2018); needs data")
