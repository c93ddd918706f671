"""LearningIntegration (seed API): an agent's learning state next to its on-chain identity.

It keeps the agent's capability weights (moving toward the scores it earns per tag, bounded 0..100, like
the IncentiveEngine does on chain), its reputation as the chain reports it, the history of processed
tasks (a task id counts once), and the RL model; ``save_state`` writes ``{agent}_state.json`` atomically
next to ``{agent}_rl_model.pt``.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agentfleet.bidding.dqn import ReinforcementLearning, load_or_fresh
from agentfleet.files import write_atomically

WEIGHT_STEP = 0.25  # fraction of the gap to the score a weight moves per task, as on chain
HISTORY = 1000  # processed task ids kept for deduplication and reports


def _checked(name: str, value: object, low: float, high: float | None = None) -> float:
    """``value`` as a float, or a ValueError naming ``name``: a real number (not a bool), finite, in range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    number = float(value)
    bounds = f">= {low:g}" if high is None else f"{low:g}..{high:g}"
    if not math.isfinite(number) or number < low or (high is not None and number > high):
        raise ValueError(f"{name} must be {bounds}, got {value!r}")
    return number


def _checked_tags(tags: object, score: float) -> dict[str, float]:
    """Per-tag scores from a list of tag names (each gets ``score``) or a dict tag -> score (0..100)."""
    if isinstance(tags, list):
        for index, tag in enumerate(tags):
            if not isinstance(tag, str):
                raise ValueError(f"tags[{index}] must be a str, got {type(tag).__name__} {tag!r}")
        return dict.fromkeys(tags, score)
    if isinstance(tags, dict):
        for tag in tags:
            if not isinstance(tag, str):
                raise ValueError(f"tags keys must be str, got {type(tag).__name__} {tag!r}")
        return {tag: _checked(f"tags[{tag!r}]", tag_score, 0, 100) for tag, tag_score in tags.items()}
    raise ValueError(f"tags must be a list of tag names or a dict tag -> score, got {type(tags).__name__}")


class LearningIntegration:
    def __init__(
        self,
        agent_address: str,
        initial_capabilities: Mapping[str, float],
        rl_model: ReinforcementLearning | None = None,
        reputation: float = 50,
        confidence_factor: float = 80,
        risk_tolerance: float = 60,
        *,
        models_dir: Path = Path("models"),
    ) -> None:
        self.agent_address = agent_address
        self.capabilities = {k: float(min(100, max(0, v))) for k, v in initial_capabilities.items()}
        self.rl_model = rl_model or ReinforcementLearning(agent_address)
        self.reputation = float(reputation)
        self.confidence_factor = float(confidence_factor)
        self.risk_tolerance = float(risk_tolerance)
        self.models_dir = Path(models_dir)
        self.history: list[dict[str, Any]] = []

    def process_task_result(
        self, task_id: str | int, task_type: str, score: float, reward: float, tags: dict[str, float] | list[str]
    ) -> bool:
        """Learn from one scored task; returns False for a task already processed (idempotent).

        Raises ValueError naming the field (before any state changes) for a score outside 0..100, a negative
        reward, a NaN, a bool or a wrong type. Why not clamp: the chain's scores are 0..100 (uint8, checked
        by completeTask), so anything else is a bug upstream, and a clamped 185 would teach the agent a
        perfect score it never earned.
        """
        if isinstance(task_id, bool) or not isinstance(task_id, str | int):
            raise ValueError(f"task_id must be a str or int, got {type(task_id).__name__} {task_id!r}")
        if not isinstance(task_type, str) or not task_type:
            raise ValueError(f"task_type must be a non-empty str, got {type(task_type).__name__} {task_type!r}")
        checked_score = _checked("score", score, 0, 100)
        checked_reward = _checked("reward", reward, 0)
        per_tag = _checked_tags(tags, checked_score)
        task_key = str(task_id)
        if any(entry["task_id"] == task_key for entry in self.history):
            return False
        for tag, target in {task_type: checked_score, **per_tag}.items():
            if tag in self.capabilities:
                self.capabilities[tag] += (target - self.capabilities[tag]) * WEIGHT_STEP
        self.history.append(
            {"task_id": task_key, "task_type": task_type, "score": checked_score, "reward": checked_reward}
        )
        self.history = self.history[-HISTORY:]
        return True

    def get_capabilities(self) -> dict[str, int]:
        return {k: round(v) for k, v in self.capabilities.items()}

    def moved_beyond(self, on_chain: dict[str, int], threshold: int) -> bool:
        """Whether the local weights drifted from the chain's by more than ``threshold`` on any capability."""
        mine = self.get_capabilities()
        return any(abs(mine[k] - on_chain.get(k, 0)) > threshold for k in mine)

    def save_state(self) -> Path:
        path = self.models_dir / f"{self.agent_address}_state.json"
        state = {
            "agent_address": self.agent_address,
            "capabilities": self.capabilities,
            "reputation": self.reputation,
            "confidence_factor": self.confidence_factor,
            "risk_tolerance": self.risk_tolerance,
            "history": self.history,
            "model_version": self.rl_model.version,
        }
        write_atomically(path, json.dumps(state, indent=2, sort_keys=True).encode())
        self.rl_model.save(self.models_dir)
        return path

    @classmethod
    def load_state(
        cls, agent_address: str, *, models_dir: Path = Path("models"), model_options: Mapping[str, Any] | None = None
    ) -> LearningIntegration:
        """The saved state; ``model_options`` (learning rate, discount factor) build the model if its file is
        missing or unreadable."""
        path = Path(models_dir) / f"{agent_address}_state.json"
        try:
            state = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot load learning state {path}: {exc}") from exc
        learning = cls(
            agent_address,
            state["capabilities"],
            load_or_fresh(agent_address, Path(models_dir), **(model_options or {})),
            state["reputation"],
            state["confidence_factor"],
            state["risk_tolerance"],
            models_dir=Path(models_dir),
        )
        learning.history = list(state.get("history", []))
        return learning

    def generate_report(self) -> dict[str, Any]:
        scores = [entry["score"] for entry in self.history]
        recent = scores[-20:]
        return {
            "agent_address": self.agent_address,
            "tasks_processed": len(self.history),
            "average_score": sum(scores) / len(scores) if scores else None,
            "recent_average_score": sum(recent) / len(recent) if recent else None,
            "total_reward": sum(entry["reward"] for entry in self.history),
            "capabilities": self.get_capabilities(),
            "reputation": self.reputation,
            "model_version": self.rl_model.version,
            "replay_memory": self.rl_model.memory.size,
        }
