"""What an agent saw when it bid (the bid-state record) and its recent win rate, kept in Redis.

The worker that bids stores a :class:`BidRecord` (state vector, action, reward and amount in wei) under
``keys.bid_state(task, agent)`` *before* the bid is sent; the trainer reads it when the outcome settles.
"""

from __future__ import annotations

import json

import redis
from pydantic import BaseModel, Field, ValidationError

from agentfleet.bidding.state import STATE_SIZE
from agentfleet.protocol import keys

BIDSTATE_TTL = 30 * 24 * 3600  # seconds
RECENT_BIDS = 20  # the win rate in the RL state covers this many of the agent's last settled bids


class BidRecord(BaseModel):
    """One bid as its agent decided it. ``reconstructed``: rebuilt from the chain after the original was lost
    (the state is unknown: counted for the win rate, never learned from)."""

    state: list[float] = Field(min_length=STATE_SIZE, max_length=STATE_SIZE)
    action: int = Field(ge=0)
    reward_wei: int = Field(ge=0)
    amount_wei: int = Field(ge=0)
    bid_cost_wei: int = Field(default=0, ge=0)  # the bid's gas, paid win or lose
    reconstructed: bool = False


def store_bid_state(client: redis.Redis, task_id: int, agent: str, record: BidRecord) -> None:
    client.set(keys.bid_state(task_id, agent), record.model_dump_json(), ex=BIDSTATE_TTL)


def drop_bid_state(client: redis.Redis, task_id: int, agent: str) -> None:
    """Forget a learning record whose bid never reached the chain."""
    client.delete(keys.bid_state(task_id, agent))


def load_bid_state(client: redis.Redis, task_id: int, agent: str) -> BidRecord | None:
    """The record, None when there is none; a record of another shape is a ValueError naming the task."""
    raw = client.get(keys.bid_state(task_id, agent))
    if raw is None:
        return None
    try:
        return BidRecord.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        raise ValueError(f"bid state of task {task_id} is malformed: {exc}") from None


def record_recent(client: redis.Redis, agent: str, won: bool) -> None:
    """One settled bid of the agent (1 won, 0 lost), newest first, capped at RECENT_BIDS."""
    pipe = client.pipeline()
    pipe.lpush(keys.recent_bids(agent), int(won))
    pipe.ltrim(keys.recent_bids(agent), 0, RECENT_BIDS - 1)
    pipe.execute()


def recent_win_rate(client: redis.Redis, agent: str) -> float:
    values = [int(v) for v in client.lrange(keys.recent_bids(agent), 0, -1)]
    return sum(values) / len(values) if values else 0.0
