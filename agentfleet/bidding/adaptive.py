"""The seed's AdaptiveBiddingStrategy: the default way an agent prices a bid, with no model to train.

Capabilities against the task's tags, workload, reputation, and the learning profile's confidence factor,
risk tolerance and fit bar decide whether and how high to bid; a bid whose gas exceeds its expected payment
(win chance x amount) is not placed.
"""

from __future__ import annotations

from agentfleet import policy
from agentfleet.bidding.context import BidContext, BidDecision, abstain
from agentfleet.bidding.costs import win_chance
from agentfleet.profiles import LearningProfile


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
            return abstain(reason)
        # Confident, reputable, idle agents can ask more; risk takers undercut to win.
        fraction = 0.55 + 0.25 * fit * p.confidence_factor + 0.15 * (ctx.reputation / 100)
        fraction -= 0.35 * p.risk_tolerance * (1 - fit / 2)
        fraction += p.workload_penalty * min(ctx.workload, 5) / 5
        if ctx.llm_fraction is not None:  # advice only: blended in, then clamped like everything else
            fraction = 0.7 * fraction + 0.3 * policy.clamp_fraction(ctx.llm_fraction)
        fraction = policy.clamp_fraction(fraction)
        amount = policy.bid_amount(ctx.reward_wei, fraction)
        if win_chance(ctx.recent_win_rate, ctx.competing_bids) * amount <= ctx.bid_cost_wei:
            return abstain(f"the bid's gas ({ctx.bid_cost_wei} wei) exceeds what it can expect to earn")
        return BidDecision(
            bid=True,
            amount_fraction=fraction,
            amount_wei=amount,
            reason=f"fit {fit * 100:.0f}, reputation {ctx.reputation}, workload {ctx.workload}",
        )
