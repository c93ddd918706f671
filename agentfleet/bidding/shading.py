"""Bid shading against the market's clearing prices: the model-based baseline the DQN is measured against (the
RL bidder's warm-up bids with the profile's heuristic instead: as the warm-up, shading measured worse, README
"Learning").

In a first-price auction the bid that earns most maximises P(win | bid) x (what winning earns at that bid).
P(win) comes from the tag's recent prices to beat (:mod:`agentfleet.bidding.market`, at the agent's
reputation): the share of them the bid stays at or under. What winning earns comes from the fit: the agent's
fit is its estimate of the score, so it passes with about fit/100 chance; a pass pays the bid, the LLM bill
of the execution (``EXECUTION_SHARE`` of the reward) and the task's transactions are paid either way. It
considers the same anchored bid levels as the DQN and abstains when none is worth its gas.
"""

from __future__ import annotations

from agentfleet.bidding.context import BidContext, BidDecision, abstain, bid_at
from agentfleet.bidding.state import BID_LEVELS, action_fraction, state_of
from agentfleet.profiles import LearningProfile

EXECUTION_SHARE = 0.1  # the execution's LLM bill, of the reward (the simulator's EXECUTION_COST)
UNSEEN_WIN = 0.5  # P(win) of any level while the agent has seen no price of the task's tags


class ShadingBiddingStrategy:
    def __init__(self, profile: LearningProfile) -> None:
        self.profile = profile

    def decide(self, ctx: BidContext) -> BidDecision:
        if ctx.fit_score < self.profile.min_fit_to_bid:
            return abstain(
                f"shading: fit {ctx.fit_score:.0f} below the profile's bar {self.profile.min_fit_to_bid:.0f}"
            )
        anchor = state_of(ctx).anchor
        reward_eth = ctx.reward_wei / 1e18
        prices = [c * (ctx.reputation + 1) for c in (ctx.market.clearing if ctx.market else [])]
        pass_chance = ctx.fit_score / 100
        best, best_value = None, 0.0
        for action in range(1, len(BID_LEVELS) + 1):
            fraction = action_fraction(action, anchor) or 0.0
            win = sum(p >= fraction for p in prices) / len(prices) if prices else UNSEEN_WIN
            value = win * (pass_chance * fraction - EXECUTION_SHARE) * reward_eth - ctx.bid_cost_wei / 1e18
            if value > best_value:
                best, best_value = fraction, value
        if best is None:
            return abstain("shading: no bid level is worth its cost at the market's prices")
        return bid_at(ctx, best, f"shading: {best:.2f} of the reward against {len(prices)} recent prices to beat")
