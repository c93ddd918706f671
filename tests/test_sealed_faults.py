"""Sealed auctions under several faults at once, in a running fleet: a bidder deactivated after it signed, a
bid book lost with Redis data, and a reorg that removes the keeper's finalizeSealed transactions (and whatever
followed them). Every task must still reach a final state, paid once or refunded."""

from __future__ import annotations

from pathlib import Path

import pytest
from web3 import Web3

from agentfleet.bidding.sealed import BidBook
from agentfleet.chain.local import advance_time
from agentfleet.protocol import keys, routing
from agentfleet.protocol.app import app
from agentfleet.protocol.status import FINAL_STATUSES, AuctionMode, TaskStatus
from shell.services import RedisServer
from testkit.chain import create_task
from testkit.fleet import pump, running_fleet

pytestmark = pytest.mark.anvil
ANVIL_SPARE = "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720"  # anvil's 10th dev account (unlocked on anvil)
BLOCKCHAIN_BIDDERS = (1, 4)  # DevelopmentAgent and BlockchainExpertAgent both have "blockchain"


def block_hash(w3: Web3, number: int) -> str | None:
    """The node's hash at this height now (None: no block there yet): web3's request cache keeps blocks at or
    below "finalized", which on anvil is the head, so ``w3.eth.get_block`` may answer with a replaced block."""
    answer = w3.provider.make_request("eth_getBlockByNumber", [hex(number), False])  # type: ignore[arg-type]
    block = answer.get("result")
    return str(block["hash"]) if block else None


def test_sealed_auctions_end_through_a_reorg_a_lost_bid_book_and_a_deactivated_bidder(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with running_fleet(tmp_path, redis_server, action_logging=False) as (s, listener, client):
        w3 = s.client.w3
        kept, lost = (create_task(s, tags=["blockchain"], window=60, mode=AuctionMode.SEALED) for _ in range(2))
        book = BidBook(client)
        pump(listener, lambda: book.count(kept) == 2 and book.count(lost) == 2)

        # Fault 1: the bidder the contract would pick deactivates after signing: the keeper must leave its bid
        # out (or the whole finalizeSealed reverts with AgentInactive) and assign the other one.
        best = min(book.bids(kept), key=lambda bid: (bid.amount, int(bid.agent, 16)))  # equal reputations
        other = next(bid for bid in book.bids(kept) if bid.agent != best.agent)
        s.registry.deactivate(next(s.agent(n) for n in BLOCKCHAIN_BIDDERS if s.agent(n).address == best.agent))
        # Fault 2: the second task's bid book is lost (Redis data gone): the task must end with a refund.
        client.delete(keys.bid_book(lost))

        advance_time(w3, 61)
        before = w3.eth.block_number
        app.send_task(routing.FINALIZE_DUE, queue=routing.KEEPER)
        pump(listener, lambda: all(s.tasks.status_of(t) != TaskStatus.OPEN for t in (kept, lost)))
        assert s.tasks.get_task(kept).assignee == other.agent
        assert s.tasks.status_of(lost) == TaskStatus.EXPIRED  # no bids to reveal: the requester is refunded

        # Fault 3: a reorg deeper than the confirmations replaces every block since the keeper's sweep (anvil
        # may put the dropped transactions back in its pool: then they are mined again, or the reconciler's
        # finalize does it; either way the tasks must end as below).
        # Mining pauses while the reorg is set up: a worker still sending (a submitResult) would otherwise add
        # a block between reading the height and the reorg, which then replaced the wrong blocks. The first new
        # block carries a transaction of its own: with none, anvil may mine the dropped transactions again
        # into an identical block (same hash: no reorg at all).
        w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
        try:
            replaced = block_hash(w3, before + 1)
            marker = {"from": ANVIL_SPARE, "to": ANVIL_SPARE, "value": "0x1"}  # dev key 9: no fleet role
            depth = w3.eth.block_number - before
            w3.provider.make_request("anvil_reorg", [depth, [[marker, 0]]])  # type: ignore[arg-type]
        finally:
            w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
            w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        s.client.nonces.forget(s.requester.address)
        assert block_hash(w3, before + 1) != replaced  # the finalize blocks are gone

        def final() -> bool:
            app.send_task(routing.RECONCILE, queue=routing.KEEPER)  # no beat here: the sweeps re-drive
            return all(s.tasks.status_of(t) in FINAL_STATUSES for t in (kept, lost))

        pump(listener, final, timeout=180)
        task = s.tasks.get_task(kept)
        assert task.assignee == other.agent and task.price == other.amount  # the same choice, made again
        assert task.status in {TaskStatus.COMPLETED, TaskStatus.FAILED}
        assert s.tasks.status_of(lost) == TaskStatus.EXPIRED
        assert w3.eth.get_balance(s.tasks.address) == 0  # nothing left in escrow
        completions = s.tasks.contract.events.TaskCompleted().get_logs(from_block=0)
        assert [e["args"]["taskId"] for e in completions] == [kept]  # paid once on the canonical chain


def test_a_book_with_more_bids_than_one_call_takes_keeps_the_best_by_the_auction_rule() -> None:
    from agentfleet.bidding.closing import best_bids
    from agentfleet.bidding.sealed import SealedBid

    def bid(n: int, amount: int) -> SealedBid:
        return SealedBid(task_id=1, agent=f"0x{n + 1:040x}", amount=amount, expiry=10**9, signature="0x")

    book = [(bid(n, 1000 - n), 50) for n in range(70)]  # equal reputations: the 64 cheapest win a place
    book.append((bid(70, 1500), 100))  # dearer, but 1500/101 < 931/51: a high reputation keeps it in
    kept = best_bids(book, 64)
    assert len(kept) == 64 and bid(70, 1500) in kept
    assert [int(b.agent, 16) for b in kept] == sorted(int(b.agent, 16) for b in kept)  # the contract's order
    assert {b.amount for b in kept if b.amount != 1500} == set(range(931, 994))  # and the 63 cheapest
