"""The trainer worker: ``celery -A workers worker -Q training -P solo`` (solo: torch never forks).

``trainer.tasks.record_outcome`` validates an outcome, ignores duplicates (task + agent), adds the
transition to the agent's replay memory, trains a few steps and writes the model atomically. The done
marker is set only after the model file is written, so a trainer killed mid-update loses nothing: the
message comes back (acks_late) and the last file on disk is always a complete model.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from agentfleet.chain.session import capability_weights
from trainer.outcomes import Outcome, load_bid_state, record_recent, reward_of
from workers import metrics
from workers.app import app
from workers.runtime import runtime

log = logging.getLogger(__name__)
TRAIN_STEPS_PER_OUTCOME = 4


@app.task(name="trainer.tasks.record_outcome", bind=True, max_retries=3)
def record_outcome(
    self: Any, agent: str, task_id: int, outcome: str, event: dict[str, Any] | None = None
) -> dict[str, Any]:
    try:
        parsed = Outcome(agent=agent, task_id=task_id, outcome=outcome, event=event)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ValueError(f"invalid outcome: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None
    rt = runtime()
    done_key = f"agentfleet:trainer:done:{parsed.task_id}:{parsed.agent.lower()}"
    if rt.redis.exists(done_key):
        return {"status": "duplicate"}
    record = load_bid_state(rt.redis, parsed.task_id, parsed.agent)
    record_recent(rt.redis, parsed.agent, won=parsed.outcome != "lost")  # the win rate in the next bid's state
    if record is None:
        rt.redis.set(done_key, "no-state")
        return {"status": "no_bid_state"}  # the bid was not placed by this fleet's strategy: nothing to learn

    import torch

    torch.set_num_threads(1)
    chain_agent = rt.session.registry.get_agent(parsed.agent)  # one read: weights and reputation
    learning = _learning(rt, parsed.agent, chain_agent)
    model = learning.rl_model
    reward = reward_of(parsed, record)
    model.remember(record["state"], int(record["action"]), reward, record["state"], True)
    losses = [loss for _ in range(TRAIN_STEPS_PER_OUTCOME) if (loss := model.train_step()) is not None]
    pushed = False
    if parsed.outcome != "lost" and parsed.event is not None:
        pushed = _learn_capabilities(rt, learning, parsed, capability_weights(chain_agent))
    learning.save_state()  # writes {agent}_state.json and {agent}_rl_model.pt, both atomically
    rt.redis.set(done_key, model.version)
    metrics.record_training(parsed.agent, version=model.version, loss=losses[-1] if losses else None,
                            replay_size=model.memory.size)  # fmt: skip
    return {"status": "trained", "reward": reward, "version": model.version, "memory": model.memory.size,
            "loss": losses[-1] if losses else None, "capabilities_pushed": pushed}  # fmt: skip


def _learning(rt: Any, agent: str, chain_agent: Any) -> Any:
    from trainer.integration import LearningIntegration
    from trainer.rl import load_or_fresh

    try:
        learning = LearningIntegration.load_state(agent, models_dir=rt.settings.models_dir)
    except ValueError:
        models = rt.settings.models_dir
        learning = LearningIntegration(agent, capability_weights(chain_agent), load_or_fresh(agent, models),
                                       chain_agent.reputation, models_dir=models)  # fmt: skip
    learning.reputation = float(chain_agent.reputation)  # reputation follows the chain
    return learning


def _learn_capabilities(rt: Any, learning: Any, outcome: Outcome, on_chain: dict[str, int]) -> bool:
    """Move local weights with the score; push them on chain only when they drifted beyond the threshold."""
    task = rt.session.tasks.get_task(outcome.task_id)
    learning.process_task_result(outcome.task_id, task.tags[0] if task.tags else "general", task.score,
                                 task.price / 1e18, list(task.tags))  # fmt: skip
    if not learning.moved_beyond(on_chain, rt.settings.capability_push_threshold):
        return False
    member = rt.directory.get(outcome.agent)
    if member is None or member.hd_index is None:
        return False
    weights = learning.get_capabilities()
    rt.session.registry.update_capabilities(
        rt.session.account(member.hd_index), list(on_chain), [weights.get(c, on_chain[c]) for c in on_chain]
    )
    return True
