"""Bidding strategies behind one interface: ``decide(BidContext) -> BidDecision``.

The default is the seed's AdaptiveBiddingStrategy (capabilities vs requirements, workload, reputation,
confidence factor, risk tolerance from the learning profile). The RL strategy of the trainer plugs into
the same Protocol. Whatever a strategy computes, ``BidDecision.amount_wei`` is produced by
:func:`agentfleet.policy.bid_amount`, so it is inside policy bounds by construction.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, Field

from agentfleet import policy
from agentfleet.profiles import LearningProfile


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


class BidDecision(BaseModel):
    bid: bool
    amount_fraction: float
    amount_wei: int
    reason: str


class BiddingStrategy(Protocol):
    def decide(self, ctx: BidContext) -> BidDecision: ...


class AdaptiveBiddingStrategy:
    """Seed heuristic: bid when the fit clears the profile's bar; price by fit, reputation, workload, risk."""

    def __init__(self, profile: LearningProfile) -> None:
        self.profile = profile

    def decide(self, ctx: BidContext) -> BidDecision:
        p = self.profile
        relevant = [ctx.capability_weights[t] for t in ctx.tags if t in ctx.capability_weights]
        match = sum(relevant) / len(relevant) / 100 if relevant else 0.0
        fit = ctx.fit_score / 100
        if p.specialization_bonus and match:
            fit = min(1.0, fit + p.specialization_bonus * match)
        if fit * 100 < p.min_fit_to_bid:
            reason = f"fit {fit * 100:.0f} below the profile's bar {p.min_fit_to_bid:.0f}"
            return BidDecision(bid=False, amount_fraction=0.0, amount_wei=0, reason=reason)
        # Confident, reputable, idle agents can ask more; risk takers undercut to win.
        fraction = 0.55 + 0.25 * fit * p.confidence_factor + 0.15 * (ctx.reputation / 100)
        fraction -= 0.35 * p.risk_tolerance * (1 - fit / 2)
        fraction += p.workload_penalty * min(ctx.workload, 5) / 5
        if ctx.llm_fraction is not None:  # advice only: blended in, then clamped like everything else
            fraction = 0.7 * fraction + 0.3 * policy.clamp_fraction(ctx.llm_fraction)
        fraction = policy.clamp_fraction(fraction)
        return BidDecision(
            bid=True,
            amount_fraction=fraction,
            amount_wei=policy.bid_amount(ctx.reward_wei, fraction),
            reason=f"fit {fit * 100:.0f}, reputation {ctx.reputation}, workload {ctx.workload}",
        )
