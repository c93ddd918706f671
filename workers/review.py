"""Tasks waiting for a human decision: a submitted result the scoring model could not score.

Scoring is the requester's side: when the LLM gives no usable score after the allowed attempts, the fleet
must not invent one (a 0 would punish the agent for the evaluator's failure). The task stays Submitted on
chain and is listed here (``agentfleet stuck``) until an operator scores it (``agentfleet score``), which
completes it on chain like the evaluator would.
"""

from __future__ import annotations

import json
import time

import redis

from agentfleet.protocol import keys

REVIEW_KEY = keys.REVIEW  # hash: task id -> {"reason", "since"}


def request(client: redis.Redis, task_id: int, reason: str) -> None:
    client.hset(REVIEW_KEY, str(task_id), json.dumps({"reason": reason, "since": time.time()}))


def waiting(client: redis.Redis, task_id: int) -> bool:
    return bool(client.hexists(REVIEW_KEY, str(task_id)))


def resolve(client: redis.Redis, task_id: int) -> None:
    client.hdel(REVIEW_KEY, str(task_id))


def pending(client: redis.Redis) -> dict[int, dict[str, object]]:
    """Every task waiting for a decision, with why and since when (unix seconds)."""
    return {int(k): json.loads(v) for k, v in client.hgetall(REVIEW_KEY).items()}
