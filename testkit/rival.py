"""A bidder outside the fleet, driven by the test itself: a fixed-price rival for the fleet's learners.

It is registered in the AgentRegistry (so the auction takes its bids) but not in the fleet's AgentDirectory,
so the listener sends it no work: the test places its bids and, when it wins, delivers its result the way a
worker's ``execute`` does (the text in the result store, its sha256 on chain), so the fleet's evaluator
scores it like any other result and the task ends completed, not expired.
"""

from __future__ import annotations

import redis

from agentfleet.chain.local import fund
from agentfleet.chain.market import tag_text
from agentfleet.chain.session import ChainSession
from agentfleet.content import ResultStore
from testkit.chain import ETH


class Rival:
    def __init__(
        self,
        session: ChainSession,
        client: redis.Redis,
        *,
        number: int = 7,
        name: str = "RivalAgent",
        capabilities: tuple[str, ...] = ("research",),
        weights: tuple[int, ...] = (90,),
    ) -> None:
        """Agent ``number`` of the session's HD accounts (pick one past the fleet's), funded and registered."""
        self.session = session
        self.results = ResultStore(client)
        self.account = session.agent(number)
        self.address = self.account.address.lower()
        fund(session.client.w3, self.account.address, 100 * ETH)
        if not session.registry.is_registered(self.account.address):
            session.registry.register(self.account, name, list(capabilities), list(weights))

    def bid(self, task_id: int, fraction: float) -> int:
        """An open bid of ``fraction`` of the task's reward; returns the amount (wei)."""
        amount = int(self.session.tasks.reward_of(task_id) * fraction)
        self.session.auction.place_bid(self.account, task_id, amount)
        return amount

    def deliver(self, task_id: int) -> bytes:
        """Submit a result that names every tag of the task (the offline evaluator's pass); returns its hash."""
        tags = [tag_text(t) for t in self.session.tasks.get_tags(task_id)]
        digest = self.results.put(f"The rival's work on task {task_id}, covering {', '.join(tags)}.")
        self.session.tasks.submit_result(self.account, task_id, digest, f"sha256:{digest.hex()}")
        return digest
