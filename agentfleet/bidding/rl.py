"""RLBiddingStrategy: the trained DQN's policy behind the ``BiddingStrategy`` protocol.

Workers pass a :class:`~agentfleet.bidding.policy_net.PolicyCache` (NumPy weights the trainer exports: no
torch in a worker); the simulator passes its model in memory. The profile still rules: no bid below its fit
bar whatever the model says, and exploration decays with the model's experience from the profile's rate.
"""

from __future__ import annotations

from typing import Protocol

from agentfleet import policy
from agentfleet.bidding.context import BidContext, BidDecision, abstain
from agentfleet.bidding.policy_net import Policy
from agentfleet.bidding.state import action_fraction, exploration_rate, state_of
from agentfleet.profiles import LearningProfile


class PolicySource(Protocol):
    def get(self, agent: str) -> Policy: ...


class RLBiddingStrategy:
    def __init__(self, agent: str, profile: LearningProfile, source: PolicySource) -> None:
        self.agent = agent
        self.profile = profile
        self.source = source

    def decide(self, ctx: BidContext) -> BidDecision:
        model = self.source.get(self.agent)
        if ctx.fit_score < self.profile.min_fit_to_bid:  # risk follows the profile: no bets on tasks it cannot do
            bar = self.profile.min_fit_to_bid
            reason = f"RL v{model.version}: fit {ctx.fit_score:.0f} below the profile's bar {bar:.0f}"
            return abstain(reason)
        decisions = model.decisions + 1  # this one included: each earlier decision left one transition
        action = model.act(state_of(ctx).vector(), exploration_rate(self.profile.exploration_rate, decisions))
        fraction = action_fraction(action)
        if fraction is None:
            return abstain(f"RL v{model.version}: abstain")
        fraction = policy.clamp_fraction(fraction)
        return BidDecision(
            bid=True,
            amount_fraction=fraction,
            amount_wei=policy.bid_amount(ctx.reward_wei, fraction),
            reason=f"RL v{model.version}: action {action}",
        )
