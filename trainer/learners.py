"""The trainer process's agents: kept in memory, every outcome journaled, the full state checkpointed now and then.

Why: writing an agent's whole model (weights, optimizer, a replay memory of up to 10,000 transitions) for every
outcome made the trainer four times slower than the training itself. Here each outcome is applied to the
agent's model in memory and appended as one JSON line to ``{agent}_journal.jsonl`` (flushed: a killed process
loses nothing the kernel has); every ``checkpoint_every`` outcomes, ``checkpoint_seconds`` after the last
checkpoint, at the agent's first outcome and when the worker stops, the model and state files are written
atomically as before (workers see a new policy version then) and the journal is emptied.

Recovery: an agent is loaded from its checkpoint, then every journal line whose outcome id the checkpoint has
not applied is applied again (the same transition, the same training steps, the same capability update).
Learning once still holds: an outcome id is in the checkpoint or in the journal before its Redis marker is
set; a line cut short by a kill is ignored (its marker was never set, so the message comes back).

One trainer owns an agent at a time: this cache assumes no other process writes the agent's files (the
default fleet runs one trainer; several trainers need the agents sharded between them).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch: only the trainer builds LearningIntegration objects (every worker imports this)
    from trainer.integration import LearningIntegration

log = logging.getLogger(__name__)
TRAIN_STEPS_PER_OUTCOME = 4


def journal_path(models_dir: Path, agent: str) -> Path:
    return Path(models_dir) / f"{agent}_journal.jsonl"


@dataclass(frozen=True)
class Lesson:
    """One outcome as the journal keeps it: the transition and, for a scored task, the capability update."""

    outcome_id: str
    state: list[float]
    action: int
    reward: float
    capability: tuple[int, str, float, float, list[str]] | None = None  # task id, type, score, price, tags

    def line(self) -> str:
        return json.dumps(
            {"id": self.outcome_id, "s": self.state, "a": self.action, "r": self.reward, "c": self.capability}
        )

    @classmethod
    def parse(cls, line: str) -> Lesson | None:
        try:
            data = json.loads(line)
            raw = data.get("c")
            capability = (
                (int(raw[0]), str(raw[1]), float(raw[2]), float(raw[3]), [str(t) for t in raw[4]]) if raw else None
            )
            state = [float(x) for x in data["s"]]
            return cls(str(data["id"]), state, int(data["a"]), float(data["r"]), capability)
        except (ValueError, KeyError, TypeError, IndexError):
            return None  # a line cut short by a kill: its outcome was never marked done, it comes back


@dataclass
class _Agent:
    learning: LearningIntegration
    since_checkpoint: int = 0
    checkpointed_at: float = field(default_factory=time.monotonic)
    on_disk: bool = False


class Learners:
    def __init__(self, models_dir: Path, *, checkpoint_every: int = 50, checkpoint_seconds: float = 30.0) -> None:
        self.models_dir = Path(models_dir)
        self.checkpoint_every = checkpoint_every
        self.checkpoint_seconds = checkpoint_seconds
        self._agents: dict[str, _Agent] = {}

    def get(self, agent: str, build: Callable[[], LearningIntegration]) -> LearningIntegration:
        """The agent's learning state: from memory, else its checkpoint (``build``) plus its journal."""
        key = agent.lower()
        held = self._agents.get(key)
        if held is None:
            self.models_dir.mkdir(parents=True, exist_ok=True)
            learning = build()
            replayed = sum(self._apply(learning, lesson) for lesson in self._journal(learning.agent_address))
            if replayed:
                log.info("%s: %s journaled outcome(s) applied again after a restart", agent, replayed)
            on_disk = learning.rl_model.model_path(self.models_dir).exists()
            held = self._agents[key] = _Agent(learning, since_checkpoint=replayed, on_disk=on_disk)
        return held.learning

    def learn(self, agent: str, lesson: Lesson) -> list[float]:
        """Apply one outcome (after ``get``), journal it, checkpoint when due; returns the training losses."""
        held = self._agents[agent.lower()]
        losses = self._train(held.learning, lesson)
        with journal_path(self.models_dir, held.learning.agent_address).open("a", encoding="utf-8") as journal:
            journal.write(lesson.line() + "\n")
        held.since_checkpoint += 1
        due = time.monotonic() - held.checkpointed_at >= self.checkpoint_seconds
        if not held.on_disk or held.since_checkpoint >= self.checkpoint_every or due:
            self.checkpoint(agent)
        return losses

    def checkpoint(self, agent: str) -> None:
        """Write the model and state files (atomically), then empty the journal they now contain."""
        held = self._agents.get(agent.lower())
        if held is None:
            return
        held.learning.save_state()
        journal_path(self.models_dir, held.learning.agent_address).write_text("")
        held.since_checkpoint, held.checkpointed_at, held.on_disk = 0, time.monotonic(), True

    def checkpoint_all(self) -> None:
        for held in list(self._agents.values()):
            if held.since_checkpoint:
                self.checkpoint(held.learning.agent_address)

    # --- internals --------------------------------------------------------------------------------------
    def _journal(self, agent: str) -> list[Lesson]:
        path = journal_path(self.models_dir, agent)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        return [lesson for lesson in map(Lesson.parse, lines) if lesson is not None]

    def _apply(self, learning: LearningIntegration, lesson: Lesson) -> int:
        if learning.rl_model.has_applied(lesson.outcome_id):
            return 0  # in the checkpoint already (a kill between the checkpoint and emptying the journal)
        self._train(learning, lesson)
        return 1

    @staticmethod
    def _train(learning: LearningIntegration, lesson: Lesson) -> list[float]:
        model = learning.rl_model
        if lesson.capability is not None:  # first: it refuses a malformed score before anything changes
            learning.process_task_result(*lesson.capability)
        model.remember(lesson.state, lesson.action, lesson.reward, lesson.state, True)
        losses = [loss for _ in range(TRAIN_STEPS_PER_OUTCOME) if (loss := model.train_step()) is not None]
        model.mark_applied(lesson.outcome_id)
        return losses


def stop_hook(learners: Learners) -> Callable[..., Any]:
    """A ``worker_shutdown`` handler that checkpoints every agent with journaled outcomes."""

    def checkpoint_on_shutdown(**_kwargs: Any) -> None:
        try:
            learners.checkpoint_all()
        except OSError as exc:  # the journal still holds everything: the next start replays it
            log.error("checkpoint at shutdown failed: %s", exc)

    return checkpoint_on_shutdown
