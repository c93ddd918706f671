"""ReinforcementLearning (seed name and defaults): a small DQN per agent that picks a bid level.

In the spirit of cleanrl's dqn.py: one readable file, an MLP Q-network, a target network synced every
``target_sync`` steps, experience replay, exploration by an upper-confidence bonus over bid levels
(``state.ucb_scores``, weighed by ``exploration_rate``), and determinism under a seed.

Each settled bid is a transition with no successor (a contextual bandit): state (what the agent saw at bid
time, :func:`agentfleet.bidding.state.state_of`), action (abstain or a bid level relative to the market's
price to beat), reward (the money it made per unit of the task's reward, plus a reputation term:
:mod:`agentfleet.bidding.reward`); with it, the levels the auction decides in hindsight.

Persistence (``{models_dir}/{agent}_rl_model.pt``): the state dict, optimizer state, counters and the replay
memory as plain tensors, written to a temp file in the same folder and renamed (atomic), with a version
number and a sha256 of the payload; then the Q-network's weights for the workers' NumPy forward pass
(``{agent}_policy.npz``, :mod:`agentfleet.bidding.policy_net`). Loading uses
``torch.load(weights_only=True)``; a truncated, corrupt or foreign file raises :class:`ModelLoadError`, and
:func:`load_or_fresh` falls back to the last good file or a fresh model, with a warning.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from pathlib import Path
from typing import Any, TypedDict

import torch
from torch import nn

from agentfleet.bidding.policy_net import ModelLoadError, PolicyNet, policy_path
from agentfleet.bidding.state import ACTIONS, STATE_SIZE
from agentfleet.files import write_atomically
from agentfleet.profiles import LearningProfile

log = logging.getLogger(__name__)

FORMAT = 4  # 4: 12 state features, 16 bid levels anchored on the market's price to beat (17 actions), 0.995 for 0.93
APPLIED_KEPT = 2_000  # outcome ids kept in the model file (far more than any redelivery window)


def model_path(models_dir: Path, agent: str) -> Path:
    return Path(models_dir) / f"{agent}_rl_model.pt"


class QNetwork(nn.Module):
    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(STATE_SIZE, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, ACTIONS)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# Half of every batch comes from the newest RECENT transitions (about 15 outcomes with their hindsight levels).
# Why: the market moves (a rival's reputation grows, the agent's own drops after a few failures) and a uniform
# draw from 10,000 transitions learned about it only as fast as the old ones aged out; in the simulator the
# learner then kept asking prices that had stopped winning for ~40 tasks, long enough to raise a rival for good.
# Why 256, not 512 (about 30 outcomes): a rival that starts winning gains 5 points a task and is out of reach in
# ten; with 512 the learner still asked the old price for 12 tasks after its own failures dropped it to 70, and
# a rival that had never won went from 50 to 100 (README "Learning": generalist seed 3, 0.80x its first 500).
RECENT = 256
RECENT_SHARE = 0.5


class ReplayMemory:
    """A ring buffer of transitions kept as tensors (so it saves with weights_only=True)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.states = torch.zeros((capacity, STATE_SIZE))
        self.actions = torch.zeros(capacity, dtype=torch.long)
        self.rewards = torch.zeros(capacity)
        self.next_states = torch.zeros((capacity, STATE_SIZE))
        self.dones = torch.zeros(capacity)
        self.counts = torch.zeros(ACTIONS)  # transitions held per action: the UCB bonus's evidence
        self.size = 0
        self.cursor = 0

    def push(self, state: list[float], action: int, reward: float, next_state: list[float], done: bool) -> None:
        i = self.cursor
        if self.size == self.capacity:
            self.counts[self.actions[i]] -= 1  # the transition it overwrites
        self.counts[action] += 1
        self.states[i] = torch.tensor(state)
        self.actions[i] = action
        self.rewards[i] = reward
        self.next_states[i] = torch.tensor(next_state)
        self.dones[i] = float(done)
        self.cursor = (self.cursor + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """A batch drawn uniformly, except a ``RECENT_SHARE`` of it from the newest ``RECENT`` transitions."""
        recent = int(batch * RECENT_SHARE) if self.size > RECENT else 0
        index = torch.randint(0, self.size, (batch - recent,), generator=generator)
        if recent:
            back = torch.randint(1, RECENT + 1, (recent,), generator=generator)
            index = torch.cat([index, (self.cursor - back) % self.capacity])
        return self.states[index], self.actions[index], self.rewards[index], self.next_states[index], self.dones[index]

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            "states": self.states,
            "actions": self.actions,
            "rewards": self.rewards,
            "next_states": self.next_states,
            "dones": self.dones,
            "size": torch.tensor(self.size),
            "cursor": torch.tensor(self.cursor),
        }

    def load_state_dict(self, data: dict[str, torch.Tensor]) -> None:
        if data["states"].shape != (self.capacity, STATE_SIZE):
            raise ModelLoadError(
                f"replay memory shape {tuple(data['states'].shape)} != ({self.capacity}, {STATE_SIZE})"
            )
        for name in ("states", "actions", "rewards", "next_states", "dones"):
            getattr(self, name).copy_(data[name])
        self.size, self.cursor = int(data["size"]), int(data["cursor"])
        self.counts = torch.bincount(self.actions[: self.size], minlength=ACTIONS).float()


class ReinforcementLearning:
    """The per-agent DQN (seed API and defaults)."""

    def __init__(
        self,
        agent_address: str,
        *,
        learning_rate: float = 0.001,
        discount_factor: float = 0.95,
        exploration_rate: float = 0.1,
        batch_size: int = 64,
        memory_size: int = 10000,
        target_sync: int = 100,
        seed: int = 0,
    ) -> None:
        self.agent_address = agent_address
        self.learning_rate = learning_rate
        self.discount_factor = discount_factor
        self.exploration_rate = exploration_rate
        self.batch_size = batch_size
        self.target_sync = target_sync
        self.seed = seed
        torch.manual_seed(seed)
        self.q = QNetwork()
        self.target = QNetwork()
        self.target.load_state_dict(self.q.state_dict())
        self.optimizer = torch.optim.Adam(self.q.parameters(), lr=learning_rate)
        self.memory = ReplayMemory(memory_size)
        self.generator = torch.Generator().manual_seed(seed)
        self.steps = 0
        self.version = 0
        # Ids of the outcomes this model learned from (the newest APPLIED_KEPT), saved in the same file as the
        # weights: "learn once" survives a crash between the model write and any marker kept elsewhere.
        self.applied: list[str] = []

    def has_applied(self, outcome_id: str) -> bool:
        return outcome_id in self.applied

    def mark_applied(self, outcome_id: str) -> None:
        self.applied = [*self.applied, outcome_id][-APPLIED_KEPT:]

    # --- acting ---------------------------------------------------------------------------------------
    def act(self, state: list[float], *, explore: bool = True) -> int:
        """The greedy action, or with ``explore`` the best Q plus a UCB bonus weighted by ``exploration_rate``
        (``state.ucb_scores``): untried bid levels first, then less and less as evidence grows."""
        with torch.no_grad():
            q = self.q(torch.tensor([state]))[0]
        if explore and self.exploration_rate > 0:
            counts = self.memory.counts
            q = q + self.exploration_rate * torch.sqrt(torch.log1p(counts.sum()) / (1 + counts))
        return int(q.argmax().item())

    @property
    def decisions(self) -> int:
        """Transitions learned from so far: the exploration schedule's clock."""
        return self.memory.size

    def policy(self) -> PolicyNet:
        """The Q-network's weights for a NumPy forward pass (what workers bid with)."""
        weights = tuple(t.detach().cpu().numpy().copy() for t in self.q.state_dict().values())
        counts = self.memory.counts.numpy().astype("float64")
        return PolicyNet(weights, version=self.version, decisions=self.decisions, counts=counts)

    # --- learning -------------------------------------------------------------------------------------
    def remember(self, state: list[float], action: int, reward: float, next_state: list[float], done: bool) -> None:
        self.memory.push(state, action, reward, next_state, done)

    def train_step(self) -> float | None:
        """One gradient step on a replay batch; None until the memory holds a batch."""
        if self.memory.size < self.batch_size:
            return None
        states, actions, target = self.sample_targets()
        predicted = self.q(states).gather(1, actions.unsqueeze(1)).squeeze(1)
        return self.apply_loss(nn.functional.smooth_l1_loss(predicted, target))

    def sample_targets(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A replay batch's states, actions and TD targets (from the target network)."""
        states, actions, rewards, next_states, dones = self.memory.sample(self.batch_size, self.generator)
        with torch.no_grad():
            best_next = self.target(next_states).max(dim=1).values
            target = rewards + self.discount_factor * best_next * (1 - dones)
        return states, actions, target

    def apply_loss(self, loss: torch.Tensor) -> float:
        """One optimizer step on ``loss`` and the target network's periodic sync. Why apart from
        ``train_step``: a learner with another loss (scripts/experiments/ensemble_q.py) steps the same way."""
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.steps += 1
        if self.steps % self.target_sync == 0:
            self.target.load_state_dict(self.q.state_dict())
        return float(loss.item())

    # --- persistence ----------------------------------------------------------------------------------
    def model_path(self, models_dir: Path) -> Path:
        return model_path(models_dir, self.agent_address)

    def save(self, models_dir: Path) -> Path:
        """Write atomically (temp file + rename); bumps the version number."""
        self.version += 1
        payload = io.BytesIO()
        torch.save(
            {
                "q": self.q.state_dict(),
                "target": self.target.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "memory": self.memory.state_dict(),
                "steps": torch.tensor(self.steps),
                "version": torch.tensor(self.version),
                "generator": self.generator.get_state(),
                "applied": list(self.applied),
            },
            payload,
        )
        body = payload.getvalue()
        envelope = io.BytesIO()
        torch.save(
            {
                "format": torch.tensor(FORMAT),
                "sha256": torch.tensor(list(hashlib.sha256(body).digest())),
                "body": torch.frombuffer(bytearray(body), dtype=torch.uint8),
            },
            envelope,
        )
        path = self.model_path(models_dir)
        write_atomically(path, envelope.getvalue())
        self.policy().save(policy_path(models_dir, self.agent_address))  # what workers read, after the model
        return path

    def load(self, models_dir: Path) -> None:
        path = self.model_path(models_dir)
        try:
            envelope = torch.load(path, weights_only=True)
            body = bytes(envelope["body"].numpy().tobytes())
            if int(envelope["format"]) != FORMAT:
                raise ModelLoadError(f"{path}: format {int(envelope['format'])} is not {FORMAT}")
            if bytes(envelope["sha256"].tolist()) != hashlib.sha256(body).digest():
                raise ModelLoadError(f"{path}: checksum mismatch")
            data = torch.load(io.BytesIO(body), weights_only=True)
            self.q.load_state_dict(data["q"])
            self.target.load_state_dict(data["target"])
            self.optimizer.load_state_dict(data["optimizer"])
            self.memory.load_state_dict(data["memory"])
            self.generator.set_state(data["generator"])
            self.steps, self.version = int(data["steps"]), int(data["version"])
            self.applied = [str(i) for i in data.get("applied", [])]
        except ModelLoadError:
            raise
        except FileNotFoundError:
            raise
        except Exception as exc:  # truncated zip, pickle refused, wrong keys or shapes
            raise ModelLoadError(f"{path}: unreadable model ({type(exc).__name__}: {exc})") from exc


class ModelOptions(TypedDict):
    learning_rate: float
    discount_factor: float


def model_options(profile: LearningProfile) -> ModelOptions:
    """The keywords an agent's model is built with, from its learning profile (batch, memory and target sync
    keep the seed's defaults). One definition for the trainer and the simulator: what the simulator measures is
    the learner the fleet trains (README "Learning": before, the simulator's learner took Adam steps of 0.003
    on batches of 32 where the trainer's took 0.001 on 64; measured with the trainer's, the figures held)."""
    return ModelOptions(learning_rate=profile.learning_rate, discount_factor=profile.discount_factor)


def load_or_fresh(agent_address: str, models_dir: Path, **kwargs: Any) -> ReinforcementLearning:
    """The saved model if it loads, else a fresh one (a corrupt file is reported and moved aside)."""
    model = ReinforcementLearning(agent_address, **kwargs)
    path = model.model_path(models_dir)
    if not path.exists():
        return model
    try:
        model.load(models_dir)
    except ModelLoadError as exc:
        log.error("%s; starting from a fresh model (the bad file is kept as %s.corrupt)", exc, path.name)
        os.replace(path, path.with_suffix(path.suffix + ".corrupt"))
        return ReinforcementLearning(agent_address, **kwargs)
    return model
