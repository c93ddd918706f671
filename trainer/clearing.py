"""What a settled auction says about the market: its clearing price per tag, and the price each bidder had to beat.

The bids come from where the fleet already keeps them: the listener's record of ``BidPlaced`` amounts (open
auctions) and the bid book (sealed ones); the auction ranks ``amount / (reputation + 1)``, with reputations
from the directory (the listener keeps it in step with ``ReputationChanged``) or, for an agent outside the
fleet, the registry. The reputation is the one now, not the one at bid time: close enough for a feature,
and the contract's own ordering is what paid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from web3 import Web3

from agentfleet.bidding.market import NOBODY, Clearing
from agentfleet.bidding.sealed import BidBook
from agentfleet.chain.market import tag_text
from agentfleet.protocol import keys
from agentfleet.runtime import Runtime


@dataclass(frozen=True)
class Auction:
    """One finished auction as the fleet saw it."""

    task_id: int
    reward_wei: int
    tags: list[str]
    weighted: dict[str, float]  # lower-case bidder -> amount / reward / (reputation + 1)
    reputations: dict[str, int] = field(default_factory=dict)  # lower-case bidder -> reputation, as ranked

    def clearing(self, winner: str, *, amount: int, bidders: int, winner_reputation: int) -> Clearing:
        """The market entry of the auction: the winner's price and bid count (from the event) weighted at its
        reputation, the runner-up's weighted price (from the bids the fleet saw), and whose reputations they
        were weighted with (a reader re-weights them at the reputations of its day)."""
        me = winner.lower()
        others = [(w, agent) for agent, w in self.weighted.items() if agent != me]
        runner_up, second = min(others, default=(NOBODY, ""))
        return Clearing(
            self.task_id,
            me,
            amount / max(1, self.reward_wei) / (winner_reputation + 1),
            runner_up,
            max(bidders, len(self.weighted), 1),
            winner_reputation=winner_reputation,
            runner_up_agent=second,
            runner_up_reputation=self.reputations.get(second, -1),
        )

    def rivals_of(self, agent: str) -> bool:
        """Whether anyone else bid."""
        return any(bidder != agent.lower() for bidder in self.weighted)

    def best_rival(self, agent: str) -> str | None:
        """The rival whose bid ``agent`` had to beat (lower-case; None: nobody else bid)."""
        others = [(w, bidder) for bidder, w in self.weighted.items() if bidder != agent.lower()]
        return min(others)[1] if others else None

    def best_rival_reputation(self, agent: str) -> int | None:
        """The reputation of the rival whose bid ``agent`` had to beat (None: nobody else bid)."""
        rival = self.best_rival(agent)
        return self.reputations.get(rival) if rival is not None else None

    def price_to_beat(self, agent: str, reputation: int) -> float | None:
        """The highest fraction of the reward ``agent`` could have bid and still won, at its reputation; None
        when the fleet saw no bid of the auction (nothing to tell)."""
        if not self.weighted:
            return None
        me = agent.lower()
        others = [w for bidder, w in self.weighted.items() if bidder != me]
        return min(others, default=NOBODY) * (reputation + 1)


def auction_of(rt: Runtime, task_id: int, task: Any = None) -> Auction:
    """The auction of ``task_id``: the task's reward and tags from the chain (``task``: ``getTask`` already
    read by the caller), the bids from Redis."""
    task = task if task is not None else rt.session.tasks.get_task(task_id)
    reward = max(1, int(task.reward))
    amounts = {
        (k.decode() if isinstance(k, bytes) else str(k)).lower(): int(v)
        for k, v in rt.redis.hgetall(keys.listener_bids(task_id)).items()
    }
    for bid in BidBook(rt.redis).bids(task_id):
        amounts.setdefault(bid.agent.lower(), bid.amount)
    reputations = {agent: reputation_of(rt, agent) for agent in amounts}
    weighted = {agent: amount / reward / (reputations[agent] + 1) for agent, amount in amounts.items()}
    return Auction(task_id, reward, [tag_text(t) for t in task.tags], weighted, reputations)


def reputation_of(rt: Runtime, agent: str) -> int:
    """An agent's reputation: the directory's (a fleet agent) or the registry's."""
    member = rt.directory.get(agent)
    if member is not None and member.reputation is not None:
        return member.reputation
    return int(rt.session.registry.get_agent(Web3.to_checksum_address(agent)).reputation)
