"""The agent of learned filter pruning (:mod:`prunekit.prune.learned`): its hyper-parameters, its
policy over one group's units, its reward and its REINFORCE update.

Example:
    >>> import torch
    >>> advantages = per_unit_advantages(torch.ones(4, 3), torch.tensor([1.0, 2.0, 3.0, 4.0]), [], [])
    >>> advantages.shape
    torch.Size([4, 3])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .units import UnitView


@dataclass(frozen=True)
class LearnedConfig:
    """Hyper-parameters of the agents (the paper's symbols in brackets).

    Attributes:
        drop_bound: the accuracy drop (a fraction) at which the reward's accuracy term reaches zero [b].
        iterations: REINFORCE updates per group.
        samples: actions sampled (and evaluated) per update.
        hidden: width of the agent's hidden layer.
        lr: Adam learning rate of the per-unit biases.
        agent_lr: Adam learning rate of the shared perceptron.
        initial_keep: every unit's keep probability before training.
        reward_batches: held-out calibration batches the reward is measured on.
        finetune_batches: SGD steps on the working copy after each group is pruned (0: none).
        finetune_lr: their learning rate (momentum 0.9).
        seed: seeds the agents' initialisation and sampling, for reproducible scores.
        progress: show a progress bar over the groups.
    """

    drop_bound: float = 0.02
    iterations: int = 20
    samples: int = 8
    hidden: int = 16
    lr: float = 0.1
    agent_lr: float = 0.01
    initial_keep: float = 0.8
    reward_batches: int = 2
    finetune_batches: int = 8
    finetune_lr: float = 0.01
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("drop_bound", "initial_keep"):
            if not 0 < getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a fraction in (0, 1), got {getattr(self, name)!r}")
        for name in ("iterations", "samples", "hidden", "reward_batches"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) > 0):
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not (isinstance(self.finetune_batches, int) and self.finetune_batches >= 0):
            raise ConfigError(f"finetune_batches must be a non-negative integer, got {self.finetune_batches!r}")
        for name in ("lr", "agent_lr", "finetune_lr"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)!r}")


class GroupAgent:
    """One group's agent: a shared perceptron over standardised filter rows plus a bias per unit."""

    def __init__(self, view: UnitView, params, config: LearnedConfig, index: int):
        rows = view.rows(params, roles=("filter",))
        rows = rows if rows.shape[1] else view.rows(params)
        self.features = ((rows - rows.mean(0)) / (rows.std(0, unbiased=False) + 1e-8)).float()
        self.config = config
        self.size = view.size
        self.generator = torch.Generator().manual_seed(config.seed * 100_003 + index)
        self.net = nn.Sequential(nn.Linear(self.features.shape[1], config.hidden), nn.Tanh(),
                                 nn.Linear(config.hidden, 1))
        with torch.no_grad():
            for layer in (self.net[0], self.net[2]):
                bound = 1 / math.sqrt(layer.in_features)
                layer.weight.uniform_(-bound, bound, generator=self.generator)
                layer.bias.zero_()
            self.net[2].weight.mul_(0.1)
        self.bias = nn.Parameter(torch.full((view.size,), math.log(config.initial_keep / (1 - config.initial_keep))))
        self.optimizer = torch.optim.Adam([{"params": self.net.parameters(), "lr": config.agent_lr},
                                           {"params": [self.bias], "lr": config.lr}])

    def logits(self) -> Tensor:
        return self.net(self.features).squeeze(1) + self.bias

    def learn(self, accuracy_with, dense: float) -> Tensor:
        """Train with REINFORCE; ``accuracy_with(keep)`` measures the model with only ``keep`` units."""
        if self.size < 2:
            return torch.zeros(self.size, dtype=torch.float64)
        history_actions, history_rewards = [], []
        for _ in range(self.config.iterations):
            keep_probability = torch.sigmoid(self.logits())
            actions = torch.bernoulli(keep_probability.detach().expand(self.config.samples, -1),
                                      generator=self.generator)
            rewards = torch.tensor([self.reward(a.bool(), accuracy_with, dense) for a in actions],
                                   dtype=torch.float64)
            advantage = per_unit_advantages(actions.double(), rewards, history_actions, history_rewards)
            history_actions.append(actions.double())
            history_rewards.append(rewards)
            log_prob = (actions * torch.log(keep_probability + 1e-8)
                        + (1 - actions) * torch.log(1 - keep_probability + 1e-8))
            loss = -(advantage.float() * log_prob).sum(1).mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        with torch.no_grad():
            return self.logits().double()

    def reward(self, keep: Tensor, accuracy_with, dense: float) -> float:
        kept = int(keep.sum())
        if kept == 0:  # a layer of width 0 cuts the network
            return -1.0 - self.size
        bound = self.config.drop_bound
        psi = (bound - (dense - accuracy_with(keep))) / bound
        return psi * math.log(self.size / kept) if psi >= 0 else psi


def per_unit_advantages(actions: Tensor, rewards: Tensor, past_actions: list[Tensor],
                         past_rewards: list[Tensor], ridge: float = 1.0) -> Tensor:
    """``[samples, units]`` advantages: each sample's reward minus a baseline for each unit that
    depends only on the *other* units' actions (so the REINFORCE gradient stays unbiased).

    The baseline is a linear critic ``c + sum_k w_k a_k`` fitted (ridge regression) to the rewards of
    the earlier rounds; unit ``j``'s baseline leaves out its own term ``w_j a_j``. It removes what the
    other units' actions explain from each unit's learning signal: with the plain mean baseline, a unit
    dropped beside an essential one shares its penalty, and the efficiency term (about 1/C per unit)
    drowns. Advantages are scaled by the spread of the rewards seen so far; the first round uses the
    round's mean as the baseline.
    """
    if not past_actions:
        advantage = (rewards - rewards.mean()).unsqueeze(1).expand(-1, actions.shape[1])
        return advantage / (rewards.std() + 1e-8) if len(rewards) > 1 else advantage
    past_a, past_r = torch.cat(past_actions), torch.cat(past_rewards)
    mean_a, mean_r = past_a.mean(0), past_r.mean()
    centred = past_a - mean_a
    gram = centred.T @ centred + ridge * torch.eye(actions.shape[1], dtype=actions.dtype)
    weights = torch.linalg.solve(gram, centred.T @ (past_r - mean_r))
    predicted = mean_r + (actions - mean_a) @ weights
    own = (actions - mean_a) * weights  # unit j's own share of the prediction
    advantage = rewards.unsqueeze(1) - (predicted.unsqueeze(1) - own)
    return advantage / (torch.cat([past_r, rewards]).std() + 1e-8)
