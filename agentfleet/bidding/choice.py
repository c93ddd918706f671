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
    name: StrategyName,
    agent: str,
    profile: LearningProfile,
    policies: Callable[[], PolicySource],
    *,
    warmup: int | None = None,
) -> BiddingStrategy:
    """``adaptive``: the seed's heuristic; ``shading``: bid shading against the market's recent prices to beat;
    ``rl``: the agent's trained DQN policy from ``policies()`` (called only then; NumPy weights, so no worker
    imports torch either way), with the adaptive heuristic bidding for its first ``warmup`` transitions."""
    if name == "shading":
        from agentfleet.bidding.shading import ShadingBiddingStrategy

        return ShadingBiddingStrategy(profile)
    if name == "rl":
        from agentfleet.bidding.rl import WARMUP, RLBiddingStrategy

        return RLBiddingStrategy(agent, profile, policies(), warmup=WARMUP if warmup is None else warmup)
    return AdaptiveBiddingStrategy(profile)
