"""LearningIntegration (seed API): an agent's learning state next to its on-chain identity.

It keeps the agent's capability weights (moving toward the scores it earns per tag, bounded 0..100, like
the IncentiveEngine does on chain), its reputation as the chain reports it, the history of processed
tasks (a task id counts once), and the RL model; ``save_state`` writes ``{agent}_state.json`` atomically
next to ``{agent}_rl_model.pt``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainer.rl import ReinforcementLearning, load_or_fresh, write_atomically

WEIGHT_STEP = 0.25  # fraction of the gap to the score a weight moves per task, as on chain
HISTORY = 1000  # processed task ids kept for deduplication and reports


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
        """Learn from one scored task; returns False for a task already processed (idempotent)."""
        task_key = str(task_id)
        if any(entry["task_id"] == task_key for entry in self.history):
            return False
        score = float(min(100, max(0, score)))
        per_tag = tags if isinstance(tags, dict) else dict.fromkeys(tags, score)
        for tag, tag_score in {task_type: score, **per_tag}.items():
            if tag in self.capabilities:
                target = float(min(100, max(0, tag_score)))
                self.capabilities[tag] += (target - self.capabilities[tag]) * WEIGHT_STEP
        self.history.append({"task_id": task_key, "task_type": task_type, "score": score, "reward": float(reward)})
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
            "agent_address": self.agent_address, "capabilities": self.capabilities, "reputation": self.reputation,
            "confidence_factor": self.confidence_factor, "risk_tolerance": self.risk_tolerance,
            "history": self.history, "model_version": self.rl_model.version,
        }  # fmt: skip
        write_atomically(path, json.dumps(state, indent=2, sort_keys=True).encode())
        self.rl_model.save(self.models_dir)
        return path

    @classmethod
    def load_state(cls, agent_address: str, *, models_dir: Path = Path("models")) -> LearningIntegration:
        path = Path(models_dir) / f"{agent_address}_state.json"
        try:
            state = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot load learning state {path}: {exc}") from exc
        learning = cls(
            agent_address, state["capabilities"], load_or_fresh(agent_address, Path(models_dir)),
            state["reputation"], state["confidence_factor"], state["risk_tolerance"], models_dir=Path(models_dir),
        )  # fmt: skip
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
