"""Which strategy an agent bids with (``AGENTFLEET_BIDDING_STRATEGY``): one switch for every caller."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from agentfleet.bidding.adaptive import AdaptiveBiddingStrategy
from agentfleet.bidding.context import BiddingStrategy
from agentfleet.profiles import LearningProfile
from agentfleet.settings import StrategyName

if TYPE_CHECKING:
    from agentfleet.bidding.rl import PolicySource


def choose_strategy(
    name: StrategyName, agent: str, profile: LearningProfile, policies: Callable[[], PolicySource]
) -> BiddingStrategy:
    """``adaptive``: the seed's heuristic; ``rl``: the agent's trained DQN policy from ``policies()`` (called
    only then; NumPy weights, so no worker imports torch either way)."""
    if name == "rl":
        from agentfleet.bidding.rl import RLBiddingStrategy

        return RLBiddingStrategy(agent, profile, policies())
    return AdaptiveBiddingStrategy(profile)
