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

One trainer owns an agent at a time: this cache assumes no other process writes the agent's files. With one
trainer (the default) nothing checks it. With several (``trainer.shards``), each holds leases on shards of
the agents and gives the cache a ``fence``: an agent is loaded under the lease token of its shard, and every
outcome, checkpoint and journal line first asks the fence whether that token still holds (a checkpoint asks
Redis itself). A trainer that lost the lease (paused, cut off from Redis) raises :class:`NotOwner` and
forgets the agent without writing anything: the new owner's files stay the only truth. An agent held under
an earlier lease is loaded again from disk (the other trainer may have learned meanwhile).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

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
    hindsight: dict[int, float] = field(default_factory=dict)  # other actions' rewards the auction tells

    def line(self) -> str:
        return json.dumps(
            {
                "id": self.outcome_id,
                "s": self.state,
                "a": self.action,
                "r": self.reward,
                "c": self.capability,
                "h": {str(a): r for a, r in self.hindsight.items()},
            }
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
            others = {int(a): float(r) for a, r in (data.get("h") or {}).items()}
            return cls(str(data["id"]), state, int(data["a"]), float(data["r"]), capability, others)
        except (ValueError, KeyError, TypeError, IndexError):
            return None  # a line cut short by a kill: its outcome was never marked done, it comes back


class NotOwner(Exception):
    """This trainer no longer holds the lease of the agent's shard: it must not write the agent's files."""


class Fence(Protocol):
    """Who may write an agent's files: the lease token this process holds for the agent's shard, or None."""

    def token(self, agent: str) -> str | None:
        """This process's own view (no I/O): before every outcome and journal line."""

    def confirm(self, agent: str) -> str | None:
        """Asked of the store that holds the leases: before a checkpoint, the write that replaces the files."""


UNFENCED = ""  # the owner token of every agent when no fence is given (one trainer)


@dataclass
class _Agent:
    learning: LearningIntegration
    owner: str = UNFENCED  # the lease token the agent was loaded under
    since_checkpoint: int = 0
    checkpointed_at: float = field(default_factory=time.monotonic)
    on_disk: bool = False


class Learners:
    def __init__(
        self,
        models_dir: Path,
        *,
        checkpoint_every: int = 50,
        checkpoint_seconds: float = 30.0,
        fence: Fence | None = None,
    ) -> None:
        self.models_dir = Path(models_dir)
        self.checkpoint_every = checkpoint_every
        self.checkpoint_seconds = checkpoint_seconds
        self.fence = fence
        self._agents: dict[str, _Agent] = {}

    def get(self, agent: str, build: Callable[[], LearningIntegration]) -> LearningIntegration:
        """The agent's learning state: from memory, else its checkpoint (``build``) plus its journal.

        Raises :class:`NotOwner` when the fence says this process does not hold the agent's shard."""
        key = agent.lower()
        owner = self._owner(agent, confirm=False)
        held = self._agents.get(key)
        if held is not None and held.owner != owner:  # loaded under an earlier lease: the disk may be newer
            del self._agents[key]
            held = None
        if held is None:
            self.models_dir.mkdir(parents=True, exist_ok=True)
            learning = build()
            replayed = sum(self._apply(learning, lesson) for lesson in self._journal(learning.agent_address))
            if replayed:
                log.info("%s: %s journaled outcome(s) applied again after a restart", agent, replayed)
            on_disk = learning.rl_model.model_path(self.models_dir).exists()
            held = self._agents[key] = _Agent(learning, owner, since_checkpoint=replayed, on_disk=on_disk)
        return held.learning

    def learn(self, agent: str, lesson: Lesson) -> list[float]:
        """Apply one outcome (after ``get``), journal it, checkpoint when due; returns the training losses.

        Raises :class:`NotOwner` (the agent forgotten) when the lease it was loaded under is gone: before the
        journal line nothing is written; a checkpoint refused after it leaves that one line, which the next
        owner replays or skips by outcome id (the outcome is not marked done: its message is handed on)."""
        held = self._held(agent, confirm=False)
        losses = self._train(held.learning, lesson)
        self._held(agent, confirm=False)  # the lease may have lapsed while it trained: then nothing is written
        with journal_path(self.models_dir, held.learning.agent_address).open("a", encoding="utf-8") as journal:
            journal.write(lesson.line() + "\n")
        held.since_checkpoint += 1
        due = time.monotonic() - held.checkpointed_at >= self.checkpoint_seconds
        if not held.on_disk or held.since_checkpoint >= self.checkpoint_every or due:
            self.checkpoint(agent)
        return losses

    def checkpoint(self, agent: str) -> None:
        """Write the model and state files (atomically), then empty the journal they now contain.

        Fenced: the lease is confirmed with the lease store first (:class:`NotOwner` if it is gone)."""
        if agent.lower() not in self._agents:
            return
        held = self._held(agent, confirm=True)
        held.learning.save_state()
        journal_path(self.models_dir, held.learning.agent_address).write_text("")
        held.since_checkpoint, held.checkpointed_at, held.on_disk = 0, time.monotonic(), True

    def checkpoint_all(self) -> None:
        """Checkpoint every agent with journaled outcomes that this process still owns (the others are
        forgotten unwritten: their journal lines are on disk for the next owner)."""
        for held in list(self._agents.values()):
            if held.since_checkpoint:
                try:
                    self.checkpoint(held.learning.agent_address)
                except NotOwner as exc:
                    log.warning("not checkpointed, its shard's lease is gone: %s", exc)

    def agents(self) -> list[str]:
        """The agents held in memory (addresses as loaded)."""
        return [held.learning.agent_address for held in self._agents.values()]

    def forget(self, agent: str) -> None:
        """Drop the agent from memory without writing anything (its shard went to another trainer)."""
        self._agents.pop(agent.lower(), None)

    # --- internals --------------------------------------------------------------------------------------
    def _owner(self, agent: str, *, confirm: bool) -> str:
        if self.fence is None:
            return UNFENCED
        owner = self.fence.confirm(agent) if confirm else self.fence.token(agent)
        if owner is None:
            self.forget(agent)
            raise NotOwner(agent)
        return owner

    def _held(self, agent: str, *, confirm: bool) -> _Agent:
        """The agent as held in memory, if the lease it was loaded under still holds (else forgotten)."""
        held = self._agents[agent.lower()]
        if self._owner(agent, confirm=confirm) != held.owner:
            self.forget(agent)
            raise NotOwner(agent)
        return held

    def _journal(self, agent: str) -> list[Lesson]:
        """The journal's lessons; a last line cut short by a kill is cut off the file too, else the next line
        appended would be glued to it and lost at the next restart (after its outcome was marked done)."""
        path = journal_path(self.models_dir, agent)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return []
        if raw and not raw.endswith(b"\n"):
            with path.open("r+b") as journal:
                journal.truncate(raw.rfind(b"\n") + 1)
        lines = raw.decode("utf-8", errors="replace").splitlines()
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
        for action, reward in lesson.hindsight.items():  # what the other bid levels would have earned
            model.remember(lesson.state, action, reward, lesson.state, True)
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
