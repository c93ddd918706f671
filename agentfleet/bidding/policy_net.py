"""The trained DQN's policy in NumPy: what a worker needs to bid with the RL strategy, without torch.

Why: a worker only runs the forward pass of an 12-64-64-17 network per bid; importing torch for it costs a few
hundred MB per worker process. The trainer (the only process that imports torch) exports each model's
Q-network weights next to the model file as ``{agent}_policy.npz`` whenever it saves; workers load that with
NumPy and compute the same Q values (to float tolerance) and so the same greedy action. An agent with no
trained model yet bids with the weights a new model starts with (``fresh_policy.npz``, exported once from
``ReinforcementLearning`` under its fixed seed; a test checks it still matches).

The cache keys each file by (mtime, size): one ``stat`` per bid tells whether the trainer wrote a new version
(hot reload); a file that does not load keeps the last good policy and says so in the log.
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from agentfleet.bidding.state import ACTIONS, STATE_SIZE
from agentfleet.files import write_atomically

log = logging.getLogger(__name__)

POLICY_FORMAT = 3  # 3: anchored bid levels (0.995 for 0.93), 12 state features, per-action counts for the UCB bonus
HIDDEN = 64
SHAPES = ((HIDDEN, STATE_SIZE), (HIDDEN,), (HIDDEN, HIDDEN), (HIDDEN,), (ACTIONS, HIDDEN), (ACTIONS,))
FRESH_POLICY = Path(__file__).with_name("fresh_policy.npz")


class ModelLoadError(ValueError):
    """A model or policy file that cannot be trusted (truncated, corrupt, another format or shape)."""


def policy_path(models_dir: Path, agent: str) -> Path:
    return Path(models_dir) / f"{agent}_policy.npz"


class Policy(Protocol):
    """What the RL strategy asks of a model: its version, how many transitions it learned from (the
    warm-up clock), and the action with the best Q plus its exploration bonus."""

    @property
    def version(self) -> int: ...

    @property
    def decisions(self) -> int: ...

    def act(self, state: list[float], exploration_rate: float) -> int: ...


@dataclass
class PolicyNet:
    """The Q-network's weights as float32 arrays (W1, b1, W2, b2, W3, b3: torch's Linear layout)."""

    weights: tuple[np.ndarray, ...]
    version: int = 0
    decisions: int = 0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(ACTIONS))  # transitions learned per action

    def __post_init__(self) -> None:
        shapes = tuple(w.shape for w in self.weights)
        if shapes != SHAPES:
            raise ModelLoadError(f"policy weights have shapes {shapes}, expected {SHAPES}")
        if not all(np.isfinite(w).all() for w in self.weights):
            raise ModelLoadError("policy weights are not all finite")
        self.counts = np.asarray(self.counts, dtype=np.float64)
        if self.counts.shape != (ACTIONS,) or not np.isfinite(self.counts).all() or (self.counts < 0).any():
            raise ModelLoadError(f"policy action counts must be {ACTIONS} finite non-negative numbers")

    def q_values(self, state: list[float]) -> np.ndarray:
        w1, b1, w2, b2, w3, b3 = self.weights
        hidden = np.maximum(w1 @ np.asarray(state, dtype=np.float32) + b1, 0.0)
        hidden = np.maximum(w2 @ hidden + b2, 0.0)
        return np.asarray(w3 @ hidden + b3)

    def best(self, state: list[float]) -> int:
        """The greedy action (the first of equal maxima, as torch's argmax)."""
        return int(np.argmax(self.q_values(state)))

    def act(self, state: list[float], exploration_rate: float) -> int:
        """The action with the best Q plus its UCB bonus (``state.ucb_scores``; ``exploration_rate`` weighs it)."""
        if exploration_rate <= 0:
            return self.best(state)
        bonus = exploration_rate * np.sqrt(np.log1p(self.counts.sum()) / (1 + self.counts))
        return int(np.argmax(self.q_values(state) + bonus))

    # --- files --------------------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        meta = np.array([POLICY_FORMAT, self.version, self.decisions], dtype=np.int64)
        weights = (w.astype(np.float32) for w in self.weights)
        np.savez(buffer, meta, *weights, self.counts)  # arr_0: meta, arr_1..6: weights, arr_7: action counts
        return buffer.getvalue()

    def save(self, path: Path) -> Path:
        write_atomically(path, self.to_bytes())
        return path

    @classmethod
    def load(cls, path: Path) -> PolicyNet:
        try:
            with np.load(path, allow_pickle=False) as data:
                form, version, decisions = (int(v) for v in data["arr_0"])
                if form != POLICY_FORMAT:
                    raise ModelLoadError(f"{path}: policy format {form} is not {POLICY_FORMAT}")
                weights = tuple(np.asarray(data[f"arr_{i + 1}"], dtype=np.float32) for i in range(len(SHAPES)))
                counts = np.asarray(data[f"arr_{len(SHAPES) + 1}"], dtype=np.float64)
                return cls(weights, version=version, decisions=decisions, counts=counts)
        except (ModelLoadError, FileNotFoundError):
            raise
        except Exception as exc:  # not a zip, a missing array, a pickled object refused
            raise ModelLoadError(f"{path}: unreadable policy ({type(exc).__name__}: {exc})") from exc


class PolicyCache:
    """The workers' policies, one per agent, reloaded when the trainer writes a new file."""

    def __init__(self, models_dir: Path) -> None:
        self.models_dir = Path(models_dir)
        self._policies: dict[str, tuple[tuple[int, int], PolicyNet]] = {}

    def get(self, agent: str) -> PolicyNet:
        path = policy_path(self.models_dir, agent)
        try:
            stat = os.stat(path)
            stamp = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = (0, 0)
        cached = self._policies.get(agent)
        if cached and cached[0] == stamp:
            return cached[1]
        policy = cached[1] if cached else PolicyNet.load(FRESH_POLICY)
        if stamp != (0, 0):
            try:
                policy = PolicyNet.load(path)
            except (ModelLoadError, FileNotFoundError) as exc:
                log.error("keeping policy version %s for %s: %s", policy.version, agent, exc)
        self._policies[agent] = (stamp, policy)
        return policy
