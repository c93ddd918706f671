"""Sealed auctions on both chains: agents sign EIP-712 bids off chain (losers send nothing), the requester
submits them after the deadline, and the contract refuses by name every bid it cannot trust."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis
from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from web3 import Web3
from web3.logs import DISCARD

from agentfleet.bidding.closing import close_auction
from agentfleet.bidding.sealed import BidBook, SealedBid, sign_bid, signer_of
from agentfleet.chain import bindings as b
from agentfleet.chain.local import advance_time
from agentfleet.chain.session import ChainSession
from agentfleet.protocol import limits
from agentfleet.protocol.status import AuctionMode, TaskStatus
from testkit.chain import ETH, create_task, deployed_market, now, sealed_bid

SEALED = AuctionMode.SEALED
PAST_DEADLINE = 301  # create_task's bidding window is 300 s


@pytest.fixture(params=["inprocess", pytest.param("anvil", marks=pytest.mark.anvil)])
def market(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ChainSession]:
    with deployed_market(request.param, tmp_path) as session:
        yield session


def args(bids: Sequence[SealedBid]) -> list[tuple[str, int, int, bytes]]:
    """The ``finalizeSealed`` argument: the bids sorted by agent address."""
    return [bid.call_arg() for bid in sorted(bids, key=lambda bid: int(bid.agent, 16))]


def balance(s: ChainSession, address: str) -> int:
    return int(s.client.w3.eth.get_balance(Web3.to_checksum_address(address)))


def nonce(s: ChainSession, address: str) -> int:
    return int(s.client.w3.eth.get_transaction_count(Web3.to_checksum_address(address)))


def test_the_best_signed_bid_wins_and_losers_send_nothing(market: ChainSession) -> None:
    s, w3 = market, market.client.w3
    # agent 0 fails a sealed task it won alone: reputation 50 -> 40
    first = create_task(s, mode=SEALED)
    advance_time(w3, PAST_DEADLINE)
    s.auction.finalize_sealed(s.requester, first, args([sealed_bid(s, 0, first, ETH // 10)]))
    s.tasks.submit_result(s.agent(0), first, b"\x01" * 32, "")
    s.tasks.complete_task(s.evaluator, first, 0)
    assert s.registry.reputation_of(s.agent(0).address) == 40

    task_id = create_task(s, mode=SEALED, reward=ETH)
    assert s.tasks.get_task(task_id).mode == SEALED
    nonces = {n: nonce(s, s.agent(n).address) for n in range(3)}
    bids = [
        sealed_bid(s, 0, task_id, ETH // 2),  # the cheapest, but 0.5 / 41
        sealed_bid(s, 1, task_id, ETH * 6 // 10),  # 0.6 / 51: the best
        sealed_bid(s, 2, task_id, ETH * 7 // 10),
    ]
    assert tuple(s.auction.bid_of(task_id, s.agent(0).address)) == (0, False)  # nothing on chain
    advance_time(w3, PAST_DEADLINE)
    receipt = s.auction.finalize_sealed(s.requester, task_id, args(bids))
    [event] = s.auction.contract.events.AuctionFinalized().process_receipt(receipt, errors=DISCARD)
    assert (event["args"]["winner"], event["args"]["amount"], event["args"]["bidCount"]) == (
        s.agent(1).address,
        ETH * 6 // 10,
        3,
    )
    task = s.tasks.get_task(task_id)
    assert (task.status, task.assignee, task.price) == (TaskStatus.ASSIGNED, s.agent(1).address, ETH * 6 // 10)
    assert s.auction.is_finalized(task_id)
    assert {n: nonce(s, s.agent(n).address) for n in range(3)} == nonces  # no agent sent a transaction

    s.tasks.submit_result(s.agent(1), task_id, b"\x02" * 32, "")
    before_agent, before_requester = balance(s, s.agent(1).address), balance(s, s.requester.address)
    s.tasks.complete_task(s.evaluator, task_id, 75)
    assert balance(s, s.agent(1).address) == before_agent + ETH * 6 // 10
    assert balance(s, s.requester.address) == before_requester + ETH * 4 // 10
    assert s.registry.reputation_of(s.agent(1).address) == 55
    assert balance(s, s.tasks.address) == balance(s, s.incentives.address) == 0


def test_sealed_ties_go_to_the_lower_address(market: ChainSession) -> None:
    s = market
    task_id = create_task(s, mode=SEALED)
    bids = [sealed_bid(s, n, task_id, ETH // 2) for n in range(3)]
    lowest = min((s.agent(n).address for n in range(3)), key=lambda a: int(a, 16))
    advance_time(s.client.w3, PAST_DEADLINE)
    s.auction.finalize_sealed(s.requester, task_id, args(bids))
    assert s.tasks.get_task(task_id).assignee == lowest


def test_bids_that_were_not_signed_as_submitted_are_refused(market: ChainSession) -> None:
    """The requester cannot assign to a bid that was never signed, change an amount, or replay a bid of
    another task, chain or contract."""
    s = market
    chain_id, auction = s.client.chain_id, s.auction.address
    task_id = create_task(s, mode=SEALED)
    other_task = create_task(s, mode=SEALED)
    good = sealed_bid(s, 0, task_id, ETH // 2)
    agent = s.agent(0).address
    expiry = good.expiry

    def signed(**overrides: Any) -> SealedBid:
        terms: dict[str, Any] = {"chain_id": chain_id, "auction": auction, "task_id": task_id, "amount": ETH // 2}
        return sign_bid(s.agent(0), **{**terms, **overrides}, expiry=expiry)

    forged = sign_bid(
        s.account(20), chain_id=chain_id, auction=auction, task_id=task_id, amount=ETH // 2, expiry=expiry
    )
    signature = bytes.fromhex(good.signature[2:])
    r, s_value, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    order = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    malleable = r + (order - s_value).to_bytes(32, "big") + bytes([55 - v])  # the same signer, high s
    refused = {
        "signed by another key": (agent, ETH // 2, expiry, bytes.fromhex(forged.signature[2:])),
        "signed for another task": signed(task_id=other_task).call_arg(),
        "signed for another chain": signed(chain_id=chain_id + 1).call_arg(),
        "signed for another contract": signed(auction=s.tasks.address).call_arg(),
        "amount changed": (agent, ETH // 3, expiry, signature),
        "expiry changed": (agent, ETH // 2, expiry + 1, signature),
        "never signed": (agent, ETH // 2, expiry, b"\x11" * 64 + b"\x1b"),
        "no signature": (agent, ETH // 2, expiry, b""),
        "truncated": (agent, ETH // 2, expiry, signature[:64]),
        "malleated": (agent, ETH // 2, expiry, malleable),
    }
    advance_time(s.client.w3, PAST_DEADLINE)
    for why, bid in refused.items():
        with pytest.raises(b.InvalidBidSignature) as caught:
            s.auction.finalize_sealed(s.requester, task_id, [bid])
        assert caught.value.values == (agent.lower(),), why
    assert s.tasks.status_of(task_id) == TaskStatus.OPEN  # nothing happened: the good bid still counts
    s.auction.finalize_sealed(s.requester, task_id, args([good]))
    assert (s.tasks.get_task(task_id).assignee, s.tasks.get_task(task_id).price) == (agent, ETH // 2)
    with pytest.raises(b.TaskNotOpen):
        s.auction.finalize_sealed(s.requester, task_id, args([good]))  # no second finalize


def test_bids_are_checked_for_standing_range_expiry_and_order(market: ChainSession) -> None:
    s = market
    task_id = create_task(s, mode=SEALED)
    short = sealed_bid(s, 0, task_id, ETH // 2, expiry_in=100)  # expires before the deadline
    outsider = sign_bid(
        s.agent(5),  # never registered
        chain_id=s.client.chain_id,
        auction=s.auction.address,
        task_id=task_id,
        amount=ETH // 2,
        expiry=now(s) + 7200,
    )
    requester = sign_bid(
        s.requester,
        chain_id=s.client.chain_id,
        auction=s.auction.address,
        task_id=task_id,
        amount=ETH // 2,
        expiry=now(s) + 7200,
    )
    dear = sealed_bid(s, 1, task_id, ETH + 1)
    inactive = sealed_bid(s, 2, task_id, ETH // 4)
    good = [sealed_bid(s, n, task_id, ETH // 2) for n in range(3)]
    s.registry.deactivate(s.agent(2))
    with pytest.raises(b.BiddingStillOpen):
        s.auction.finalize_sealed(s.requester, task_id, args(good[:2]))
    advance_time(s.client.w3, PAST_DEADLINE)

    with pytest.raises(b.BidExpired) as expired:
        s.auction.finalize_sealed(s.requester, task_id, args([short]))
    assert expired.value.values == (s.agent(0).address.lower(), short.expiry)
    with pytest.raises(b.NotRegisteredAgent):
        s.auction.finalize_sealed(s.requester, task_id, args([outsider]))
    with pytest.raises(b.AgentInactive):
        s.auction.finalize_sealed(s.requester, task_id, args([good[0], inactive]))
    with pytest.raises(b.RequesterCannotBid):
        s.auction.finalize_sealed(s.requester, task_id, args([requester]))
    with pytest.raises(b.BidOutOfRange):
        s.auction.finalize_sealed(s.requester, task_id, args([dear]))
    with pytest.raises(b.BidsNotSorted):
        s.auction.finalize_sealed(s.requester, task_id, list(reversed(args(good[:2]))))
    with pytest.raises(b.BidsNotSorted):
        s.auction.finalize_sealed(s.requester, task_id, [good[0].call_arg(), good[0].call_arg()])  # duplicate
    twin = sealed_bid(s, 0, task_id, ETH // 3)  # a second signed bid of the same agent: still a duplicate
    with pytest.raises(b.BidsNotSorted):
        s.auction.finalize_sealed(s.requester, task_id, [twin.call_arg(), good[0].call_arg()])
    padding = [
        (Web3.to_checksum_address(f"0x{i + 1:040x}"), 1, 2**63, b"") for i in range(limits.MAX_BIDS_PER_TASK + 1)
    ]
    with pytest.raises(b.TooManyBids):
        s.auction.finalize_sealed(s.requester, task_id, padding)
    with pytest.raises(b.NotRequester):
        s.auction.finalize_sealed(s.agent(0), task_id, args(good[:2]))  # within the window: requester only
    s.auction.finalize_sealed(s.requester, task_id, args(good[:2]))
    assert s.tasks.status_of(task_id) == TaskStatus.ASSIGNED


def test_after_the_reveal_window_anyone_closes_without_bids(market: ChainSession) -> None:
    s, w3 = market, market.client.w3
    late = create_task(s, mode=SEALED, reward=2 * ETH)
    empty = create_task(s, mode=SEALED, reward=3 * ETH)
    bids = args([sealed_bid(s, 0, late, ETH // 2, expiry_in=3 * 3600)])
    advance_time(w3, PAST_DEADLINE)
    before = balance(s, s.requester.address)  # within the window an empty list closes the task too
    receipt = s.auction.finalize_sealed(s.requester, empty, [])
    gas = int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])
    assert balance(s, s.requester.address) == before + 3 * ETH - gas
    assert s.tasks.status_of(empty) == TaskStatus.EXPIRED and s.auction.is_finalized(empty)

    advance_time(w3, limits.REVEAL_WINDOW + 1)
    with pytest.raises(b.RevealWindowClosed):
        s.auction.finalize_sealed(s.requester, late, bids)  # the signed bids are void now
    with pytest.raises(b.RevealWindowClosed):
        s.auction.finalize_sealed(s.agent(1), late, bids)
    before = balance(s, s.requester.address)
    s.auction.finalize_sealed(s.agent(1), late, [])  # anyone, with no bids: the requester is refunded
    assert s.tasks.status_of(late) == TaskStatus.EXPIRED
    assert balance(s, s.requester.address) == before + 2 * ETH
    assert balance(s, s.tasks.address) == balance(s, s.incentives.address) == 0
    with pytest.raises(b.TaskNotOpen):
        s.auction.finalize_sealed(s.agent(1), late, [])


def test_each_mode_refuses_the_other_modes_calls(market: ChainSession) -> None:
    s = market
    sealed = create_task(s, mode=SEALED)
    open_ = create_task(s)
    cancelled = create_task(s, mode=SEALED)
    with pytest.raises(b.WrongMode):
        s.auction.place_bid(s.agent(0), sealed, ETH // 2)
    s.tasks.cancel_task(s.requester, cancelled)  # a sealed task can be cancelled before its deadline
    assert s.tasks.status_of(cancelled) == TaskStatus.CANCELLED
    advance_time(s.client.w3, PAST_DEADLINE)
    with pytest.raises(b.WrongMode):
        s.auction.finalize(s.requester, sealed)
    with pytest.raises(b.WrongMode):
        s.auction.finalize_sealed(s.requester, open_, [])
    with pytest.raises(b.TaskNotOpen):
        s.auction.finalize_sealed(s.requester, cancelled, [])
    with pytest.raises(b.TaskNotFound):
        s.auction.finalize_sealed(s.requester, 999, [])


def test_signatures_match_the_contract_digest(market: ChainSession) -> None:
    s = market
    chain_id, auction = s.client.chain_id, s.auction.address
    task_id = create_task(s, mode=SEALED)
    bid = sealed_bid(s, 0, task_id, ETH // 2)
    assert signer_of(bid, chain_id=chain_id, auction=auction) == s.agent(0).address
    assert signer_of(bid, chain_id=chain_id + 1, auction=auction) != s.agent(0).address
    assert signer_of(bid.model_copy(update={"amount": ETH // 3}), chain_id=chain_id, auction=auction) != bid.agent
    assert signer_of(bid.model_copy(update={"signature": "0x1234"}), chain_id=chain_id, auction=auction) is None

    domain = {"name": "agentfleet BidAuction", "version": "1", "chainId": chain_id, "verifyingContract": auction}
    message = {"taskId": task_id, "amount": bid.amount, "agent": bid.agent, "expiry": bid.expiry}
    types = {
        "Bid": [
            {"name": n, "type": t}
            for n, t in [("taskId", "uint256"), ("amount", "uint256"), ("agent", "address"), ("expiry", "uint64")]
        ]
    }
    typed = encode_typed_data(domain_data=domain, message_types=types, message_data=message)
    signed = Account.sign_message(typed, s.agent(0).key)
    assert s.auction.bid_digest(task_id, bid.amount, bid.agent, bid.expiry) == signed.message_hash
    assert signed.signature.to_0x_hex() == bid.signature

    def keccak(text: str) -> bytes:
        return bytes(Web3.keccak(text=text))

    separator = Web3.keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                keccak("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak("agentfleet BidAuction"),
                keccak("1"),
                chain_id,
                auction,
            ],
        )
    )
    assert s.auction.domain_separator() == separator
    assert s.auction.bid_typehash() == keccak("Bid(uint256 taskId,uint256 amount,address agent,uint64 expiry)")


def test_close_auction_submits_the_good_bids_of_the_book(market: ChainSession, redis_client: redis.Redis) -> None:
    s = market
    for number in (3, 4):
        s.registry.register(s.agent(number), f"Agent{number}", ["research"], [50])
    book = BidBook(redis_client)
    task_id = create_task(s, mode=SEALED)
    deadline = s.tasks.get_task(task_id).biddingDeadline
    stranger = s.account(20)
    forged = sign_bid(
        stranger,
        chain_id=s.client.chain_id,
        auction=s.auction.address,
        task_id=task_id,
        amount=ETH // 10,
        expiry=now(s) + 7200,
    ).model_copy(update={"agent": s.agent(3).address})
    good = [sealed_bid(s, 0, task_id, ETH * 6 // 10), sealed_bid(s, 1, task_id, ETH // 2)]
    bad = [
        forged,  # the cheapest, but agent 3 never signed it
        sealed_bid(s, 2, task_id, ETH // 5),  # agent 2 deactivates below
        sealed_bid(s, 4, task_id, ETH // 4).model_copy(update={"received_at": deadline + 5}),  # too late
    ]
    for bid in good + bad:
        assert book.publish(bid)
    assert not book.publish(sealed_bid(s, 0, task_id, ETH // 100))  # the first bid of an agent stands
    s.registry.deactivate(s.agent(2))
    assert book.count(task_id) == 5

    assert close_auction(s, book, task_id, caller=s.requester, now=now(s)).status == "still_open"
    advance_time(s.client.w3, PAST_DEADLINE)
    assert close_auction(s, book, task_id, caller=s.agent(0), now=now(s)).status == "not_requester"
    closing = close_auction(s, book, task_id, caller=s.requester, now=now(s))
    assert (closing.status, closing.mode, closing.bids) == ("finalized", SEALED, len(good))
    task = s.tasks.get_task(task_id)
    assert (task.status, task.assignee, task.price) == (TaskStatus.ASSIGNED, s.agent(1).address, ETH // 2)
    assert close_auction(s, book, task_id, caller=s.requester, now=now(s)).status == "already_finalized"

    open_task = create_task(s)
    s.auction.place_bid(s.agent(0), open_task, ETH // 2)
    advance_time(s.client.w3, PAST_DEADLINE)
    closing = close_auction(s, book, open_task, caller=s.agent(1), now=now(s))
    assert (closing.status, closing.mode) == ("finalized", AuctionMode.OPEN)
    assert s.tasks.get_task(open_task).assignee == s.agent(0).address
