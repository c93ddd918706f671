"""The reward a settled bid teaches: profit relative to the task's reward (the bid's gas paid) plus the reputation
it moved.

One definition for the trainer (real outcomes) and the simulator (its market), so what the agent learns in
the simulator is what it learns in the fleet.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from agentfleet.bidding.record import BidRecord
from agentfleet.policy import Address
from agentfleet.protocol.limits import FAILURE_PENALTY, PASS_SCORE, REPUTATION_STEP

REPUTATION_WEIGHT = 0.05  # reward per reputation point (profit is in units of the task's reward)
FAILURE_REWARD = -REPUTATION_WEIGHT * FAILURE_PENALTY


class Outcome(BaseModel):
    """The trainer's message: how one agent's bid on one task ended (``event``: the chain event, if any)."""

    agent: Address
    task_id: int = Field(ge=1)
    outcome: Literal["won", "lost", "failed"]
    event: dict[str, Any] | None = None


def reputation_moved(score: int) -> int:
    """Reputation points a completed task with this score moves (the IncentiveEngine's rule)."""
    if score >= PASS_SCORE:
        return (score - PASS_SCORE) // REPUTATION_STEP
    return -FAILURE_PENALTY


def reward_of(outcome: Outcome, record: BidRecord) -> float:
    """Profit relative to the reward, plus the reputation the task moved (it wins the next auctions).

    Passed: price / reward + REPUTATION_WEIGHT x (score - 50) // 5 (from the TaskCompleted event's score when
    the message carries it). Failed or expired: the 10-point penalty. Lost: nothing earned. In every case the
    bid's gas (relative to the reward) is subtracted: a bid that could not win still cost its transaction."""
    gas = record.bid_cost_wei / max(1, record.reward_wei)  # paid whatever the outcome
    if outcome.outcome == "lost":
        return -gas
    if outcome.outcome == "failed":
        return FAILURE_REWARD - gas
    reward = record.amount_wei / max(1, record.reward_wei) - gas
    score = ((outcome.event or {}).get("args") or {}).get("score")
    if isinstance(score, int) and PASS_SCORE <= score <= 100:
        reward += REPUTATION_WEIGHT * reputation_moved(score)
    return reward
