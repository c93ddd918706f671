"""What a bidding strategy sees and says: ``decide(BidContext) -> BidDecision`` behind one Protocol.

Every strategy (the seed's adaptive heuristic, the trained DQN) plugs into :class:`BiddingStrategy`, and
whatever it computes, ``BidDecision.amount_wei`` comes from :func:`agentfleet.policy.bid_amount`, so it is
inside policy bounds by construction.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, Field

from agentfleet import policy
from agentfleet.bidding.market import MarketFeatures


class BidContext(BaseModel):
    """What an agent knows when it decides on a task (the RL state is built from the same fields)."""

    task_id: int = Field(ge=1)
    reward_wei: int = Field(gt=0)
    tags: list[str]
    fit_score: float = Field(ge=0, le=100)
    capability_weights: dict[str, int]
    reputation: int = Field(ge=0, le=100)
    workload: int = Field(default=0, ge=0, description="tasks the agent is executing now")
    seconds_to_deadline: int = Field(default=0, ge=0)
    competing_bids: int = Field(default=0, ge=0, description="bids already placed on this task")
    recent_win_rate: float = Field(default=0.0, ge=0, le=1, description="share of the agent's recent bids it won")
    llm_fraction: float | None = Field(default=None, description="the LLM's bid advice (untrusted)")
    bid_cost_wei: int = Field(default=0, ge=0, description="gas the agent pays to place the bid, at the gas price")
    market: MarketFeatures | None = Field(default=None, description="recent clearing prices of the task's tags")


class BidDecision(BaseModel):
    bid: bool
    amount_fraction: float
    amount_wei: int
    reason: str


def abstain(reason: str) -> BidDecision:
    """The decision not to bid."""
    return BidDecision(bid=False, amount_fraction=0.0, amount_wei=0, reason=reason)


def bid_at(ctx: BidContext, fraction: float, reason: str) -> BidDecision:
    """The decision to bid ``fraction`` of the reward, clamped into policy bounds first."""
    fraction = policy.clamp_fraction(fraction)
    return BidDecision(
        bid=True, amount_fraction=fraction, amount_wei=policy.bid_amount(ctx.reward_wei, fraction), reason=reason
    )


class BiddingStrategy(Protocol):
    def decide(self, ctx: BidContext) -> BidDecision: ...
