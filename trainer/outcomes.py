"""From an outcome message to a training transition: validation, the bid-time state, the reward.

The worker that bid stored what it saw (``agentfleet:bidstate:{task}:{agent}``: state vector, action,
reward in wei); the listener's outcome message says what happened; :func:`reward_of` turns it into the
reward (profit relative to the task's reward plus the reputation it moved).
"""

from __future__ import annotations

import json
from typing import Any, Literal

import redis
from pydantic import BaseModel, Field

from agentfleet.policy import Address
from trainer.state import BID_LEVELS, STATE_SIZE

REPUTATION_WEIGHT = 0.05  # reward per reputation point (profit is in units of the task's reward)
FAILURE_PENALTY = 10  # reputation points a failed or expired task costs (Limits.FAILURE_PENALTY)
FAILURE_REWARD = -REPUTATION_WEIGHT * FAILURE_PENALTY
BIDSTATE_TTL = 30 * 24 * 3600  # seconds


class Outcome(BaseModel):
    agent: Address
    task_id: int = Field(ge=1)
    outcome: Literal["won", "lost", "failed"]
    event: dict[str, Any] | None = None


def bidstate_key(task_id: int, agent: str) -> str:
    return f"agentfleet:bidstate:{task_id}:{agent.lower()}"


def nearest_action(fraction: float) -> int:
    """The DQN action whose bid level is closest to ``fraction`` (for bids another strategy chose)."""
    return 1 + min(range(len(BID_LEVELS)), key=lambda i: abs(BID_LEVELS[i] - fraction))


def store_bid_state(client: redis.Redis, task_id: int, agent: str, vector: list[float], action: int,
                    reward_wei: int, amount_wei: int, *, reconstructed: bool = False) -> None:  # fmt: skip
    """What the agent saw when it bid. ``reconstructed``: rebuilt from the chain after the original was lost
    (the state is unknown: counted for the win rate, never learned from)."""
    record = {"state": vector, "action": action, "reward_wei": reward_wei, "amount_wei": amount_wei,
              "reconstructed": reconstructed}  # fmt: skip
    client.set(bidstate_key(task_id, agent), json.dumps(record), ex=BIDSTATE_TTL)


def drop_bid_state(client: redis.Redis, task_id: int, agent: str) -> None:
    """Forget a learning record whose bid never reached the chain."""
    client.delete(bidstate_key(task_id, agent))


RECENT_BIDS = 20  # the win rate in the RL state covers this many of the agent's last settled bids


def recent_key(agent: str) -> str:
    return f"agentfleet:recent:{agent.lower()}"


def record_recent(client: redis.Redis, agent: str, won: bool) -> None:
    """One settled bid of the agent (1 won, 0 lost), newest first, capped at RECENT_BIDS."""
    pipe = client.pipeline()
    pipe.lpush(recent_key(agent), int(won))
    pipe.ltrim(recent_key(agent), 0, RECENT_BIDS - 1)
    pipe.execute()


def recent_win_rate(client: redis.Redis, agent: str) -> float:
    values = [int(v) for v in client.lrange(recent_key(agent), 0, -1)]
    return sum(values) / len(values) if values else 0.0


def load_bid_state(client: redis.Redis, task_id: int, agent: str) -> dict[str, Any] | None:
    raw = client.get(bidstate_key(task_id, agent))
    if raw is None:
        return None
    record = json.loads(raw)
    if len(record.get("state", [])) != STATE_SIZE:
        raise ValueError(f"bid state of task {task_id} has {len(record.get('state', []))} features")
    return record  # type: ignore[no-any-return]


def reward_of(outcome: Outcome, record: dict[str, Any]) -> float:
    """Profit relative to the reward, plus the reputation the task moved (it wins the next auctions).

    Passed: price / reward + REPUTATION_WEIGHT x (score - 50) // 5 (the IncentiveEngine's rule, from the
    TaskCompleted event's score when the message carries it). Failed or expired: the 10-point penalty.
    Lost: 0, nothing was spent. The simulator uses the same weights."""
    if outcome.outcome == "lost":
        return 0.0
    if outcome.outcome == "failed":
        return FAILURE_REWARD
    reward = float(record["amount_wei"]) / max(1, int(record["reward_wei"]))
    score = ((outcome.event or {}).get("args") or {}).get("score")
    if isinstance(score, int) and 50 <= score <= 100:
        reward += REPUTATION_WEIGHT * ((score - 50) // 5)
    return reward
