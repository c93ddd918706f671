"""Experiment (docs/learning-experiments.md, sixteenth session): the Q-network as an ensemble of ``HEADS``
networks, each trained on its own bootstrap half of every batch; the agent acts on their mean (``MODE=mean``)
or on one head drawn per decision (``MODE=thompson``, bootstrapped-DQN exploration).

Why try it: every change near the reputation cliff moved which public sparse run ends behind (sparse 4 for
sparse 2), as if a run's late windows were one draw of a noisy process; probes show the learner's window
profit swinging 20-30 % between windows of the same market. If part of that swing is the single network's
own noise (a constant-rate Adam tracking the newest replay), a mean over independently trained heads acts
more steadily; Thompson sampling is the uncertainty-driven exploration the issue names. Simulator only: it
patches ``dqn.QNetwork`` and ``ReinforcementLearning.train_step``. Measure with ``scripts/learning_sweep.py
--learner scripts/experiments/ensemble_q.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import agentfleet.bidding.dqn as dqn
import trainer.simulator as simulator

HEADS = int(os.environ.get("HEADS", "3"))
MODE = os.environ.get("MODE", "mean")
_NETWORK = getattr(dqn.QNetwork, "original", dqn.QNetwork)
_BASE = simulator.rl_focal


class EnsembleQ(nn.Module):
    """``HEADS`` independent Q-networks; ``forward`` is their mean, or one head's under Thompson sampling."""

    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.heads = nn.ModuleList(_NETWORK(hidden) for _ in range(HEADS))

    def all(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([head(x) for head in self.heads])  # heads x batch x actions

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if MODE == "thompson" and x.shape[0] == 1:  # one state: a decision (training passes whole batches)
            index = int(torch.randint(HEADS, (1,), generator=self.draw).item())
            return self.heads[index](x)
        return self.all(x).mean(dim=0)

    draw = torch.Generator().manual_seed(0)


def train_step(self: dqn.ReinforcementLearning) -> float | None:
    """Each head on its own bootstrap mask of the batch (a transition in each head's half with chance 1/2)."""
    if self.memory.size < self.batch_size:
        return None
    states, actions, target = self.sample_targets()
    predicted = self.q.all(states).gather(2, actions.view(1, -1, 1).expand(HEADS, -1, 1)).squeeze(2)
    mask = (torch.rand(predicted.shape, generator=self.generator) < 0.5).float()
    losses = nn.functional.smooth_l1_loss(predicted, target.expand_as(predicted), reduction="none")
    return self.apply_loss((losses * mask).sum() / mask.sum().clamp(min=1.0))


EnsembleQ.original = _NETWORK  # type: ignore[attr-defined]


def rl_focal(seed: int, profile: str = "balanced") -> Any:
    dqn.QNetwork = EnsembleQ  # type: ignore[misc]
    dqn.ReinforcementLearning.train_step = train_step  # type: ignore[method-assign]
    EnsembleQ.draw = torch.Generator().manual_seed(seed)
    return _BASE(seed, profile)
