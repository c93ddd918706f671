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

from trainer.outcomes import Outcome, load_bid_state, reward_of
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
    if record is None:
        rt.redis.set(done_key, "no-state")
        return {"status": "no_bid_state"}  # the bid was not placed by this fleet's strategy: nothing to learn

    import torch

    from trainer.rl import load_or_fresh

    torch.set_num_threads(1)
    model = load_or_fresh(parsed.agent, rt.settings.models_dir)
    reward = reward_of(parsed, record)
    model.remember(record["state"], int(record["action"]), reward, record["state"], True)
    losses = [loss for _ in range(TRAIN_STEPS_PER_OUTCOME) if (loss := model.train_step()) is not None]
    path = model.save(rt.settings.models_dir)
    rt.redis.set(done_key, model.version)
    return {"status": "trained", "reward": reward, "version": model.version, "memory": model.memory.size,
            "loss": losses[-1] if losses else None, "path": str(path)}  # fmt: skip
