"""The trainer's agents in memory: journaled outcomes, periodic checkpoints, recovery after a kill."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from agentfleet.bidding.dqn import ReinforcementLearning
from agentfleet.bidding.state import ACTIONS, STATE_SIZE
from trainer.integration import LearningIntegration
from trainer.learners import Learners, Lesson, NotOwner, journal_path

torch.set_num_threads(1)
AGENT = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"


def build(models: Path) -> LearningIntegration:
    try:
        return LearningIntegration.load_state(AGENT, models_dir=models)
    except ValueError:
        return LearningIntegration(AGENT, {"research": 60.0}, ReinforcementLearning(AGENT), models_dir=models)


def lesson(n: int, *, scored: bool = False) -> Lesson:
    capability = (n, "research", 90.0, 0.5, ["research"]) if scored else None
    return Lesson(f"{n}:{AGENT.lower()}", [n / 100] * STATE_SIZE, n % ACTIONS, 0.1 * (n % 5), capability)


def on_disk(models: Path) -> ReinforcementLearning:
    model = ReinforcementLearning(AGENT)
    model.load(models)
    return model


def test_outcomes_are_journaled_and_checkpointed_every_n(tmp_path: Path) -> None:
    learners = Learners(tmp_path, checkpoint_every=5, checkpoint_seconds=3600)
    learners.get(AGENT, lambda: build(tmp_path))
    learners.learn(AGENT, lesson(1))
    assert on_disk(tmp_path).decisions == 1  # the first outcome writes the files (workers get a policy at once)
    for n in range(2, 9):
        learners.learn(AGENT, lesson(n))
    assert on_disk(tmp_path).decisions == 6  # checkpointed after outcome 6 (5 since the first)
    journal = journal_path(tmp_path, AGENT).read_text().splitlines()
    assert [Lesson.parse(line).outcome_id for line in journal] == [lesson(n).outcome_id for n in (7, 8)]  # type: ignore[union-attr]
    learners.checkpoint_all()  # what the worker does when it stops
    assert on_disk(tmp_path).decisions == 8 and journal_path(tmp_path, AGENT).read_text() == ""


def test_a_killed_trainer_loses_nothing_and_learns_nothing_twice(tmp_path: Path) -> None:
    first = Learners(tmp_path, checkpoint_every=4, checkpoint_seconds=3600)
    first.get(AGENT, lambda: build(tmp_path))
    for n in range(1, 11):
        first.learn(AGENT, lesson(n, scored=n % 2 == 0))
    kept = first.get(AGENT, lambda: build(tmp_path))
    with journal_path(tmp_path, AGENT).open("a") as journal:
        journal.write('{"id": "11:0x90f7", "s": [0.1, 0.2')  # a line cut short by the kill
    # kill -9: the process and its memory are gone, nothing was checkpointed after outcome 9
    second = Learners(tmp_path, checkpoint_every=4, checkpoint_seconds=3600)
    again = second.get(AGENT, lambda: build(tmp_path))
    assert again.rl_model.decisions == 10 == kept.rl_model.decisions  # the journal's outcome applied again
    assert sorted(again.rl_model.applied) == sorted(lesson(n).outcome_id for n in range(1, 11))
    assert again.get_capabilities() == kept.get_capabilities()  # scored tasks moved the weights once
    assert len(again.history) == 5
    assert again.rl_model.has_applied(lesson(10).outcome_id)  # a redelivered outcome is a duplicate
    # the second trainer learns on, then is killed too: its journal lines were not glued to the cut one
    second.learn(AGENT, lesson(11))
    second.learn(AGENT, lesson(12))
    third = Learners(tmp_path, checkpoint_every=4, checkpoint_seconds=3600).get(AGENT, lambda: build(tmp_path))
    assert third.rl_model.decisions == 12
    assert all(third.rl_model.has_applied(lesson(n).outcome_id) for n in (11, 12))


def test_a_kill_between_checkpoint_and_journal_reset_does_not_replay(tmp_path: Path) -> None:
    learners = Learners(tmp_path, checkpoint_every=100, checkpoint_seconds=3600)
    learners.get(AGENT, lambda: build(tmp_path))
    for n in range(1, 6):
        learners.learn(AGENT, lesson(n))
    lines = journal_path(tmp_path, AGENT).read_text()
    learners.checkpoint(AGENT)
    journal_path(tmp_path, AGENT).write_text(lines)  # the checkpoint landed, the journal reset did not
    again = Learners(tmp_path).get(AGENT, lambda: build(tmp_path))
    assert again.rl_model.decisions == 5  # not 9: every journaled id is in the checkpoint


class Lease:
    """A fence that answers the token the test sets (None: this process holds no lease on the agent's shard)."""

    def __init__(self, token: str | None) -> None:
        self.current = token
        self.confirmed = 0

    def token(self, agent: str) -> str | None:
        return self.current

    def confirm(self, agent: str) -> str | None:
        self.confirmed += 1
        return self.current


def test_a_fenced_trainer_writes_only_under_its_lease_and_reloads_after_another_held_it(tmp_path: Path) -> None:
    lease = Lease("first")
    mine = Learners(tmp_path, checkpoint_every=2, checkpoint_seconds=3600, fence=lease)
    mine.get(AGENT, lambda: build(tmp_path))
    mine.learn(AGENT, lesson(1))
    assert lease.confirmed == 1 and on_disk(tmp_path).decisions == 1  # a checkpoint asks the lease store first
    lease.current = None  # the lease is gone: nothing is learned, nothing written, the agent is forgotten
    with pytest.raises(NotOwner):
        mine.learn(AGENT, lesson(2))
    with pytest.raises(NotOwner):
        mine.get(AGENT, lambda: build(tmp_path))
    assert mine.agents() == [] and journal_path(tmp_path, AGENT).read_text() == ""

    lease.current = "second"  # held again later, after another trainer learned outcomes 2 and 3
    mine.get(AGENT, lambda: build(tmp_path))
    other = Learners(tmp_path, checkpoint_every=2, checkpoint_seconds=3600)
    other.get(AGENT, lambda: build(tmp_path))
    for n in (2, 3):
        other.learn(AGENT, lesson(n))
    lease.current = "third"  # the agent in memory was loaded under "second": loaded again from the disk
    assert mine.get(AGENT, lambda: build(tmp_path)).rl_model.decisions == 3


def test_hindsight_levels_are_journaled_and_replayed_with_their_outcome(tmp_path: Path) -> None:
    taught = Lesson(f"1:{AGENT.lower()}", [0.5] * STATE_SIZE, 3, 0.4, None, hindsight={0: -0.01, 5: 0.2, 9: -0.02})
    assert Lesson.parse(taught.line()) == taught
    first = Learners(tmp_path, checkpoint_every=100, checkpoint_seconds=3600)
    first.get(AGENT, lambda: build(tmp_path))
    first.learn(AGENT, lesson(2))  # the first outcome is checkpointed; the next one only journaled
    first.learn(AGENT, taught)
    # kill -9 here: the second trainer replays the journal, the outcome with its three hindsight levels
    again = Learners(tmp_path, checkpoint_every=100, checkpoint_seconds=3600).get(AGENT, lambda: build(tmp_path))
    memory = again.rl_model.memory
    assert memory.size == 1 + 4 and sorted(memory.actions[1:5].tolist()) == [0, 3, 5, 9]
    assert memory.counts[5] == 1 and memory.counts.sum() == 5
