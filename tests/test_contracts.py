"""Contract behaviour on both chains: a full task life and every access-control rule, by error name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agentfleet.chain import bindings as b
from agentfleet.chain.local import advance_time
from agentfleet.chain.session import ChainSession
from agentfleet.protocol.status import TaskStatus
from testkit.chain import ETH, create_task, deployed_market


@pytest.fixture(params=["inprocess", pytest.param("anvil", marks=pytest.mark.anvil)])
def market(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ChainSession]:
    with deployed_market(request.param, tmp_path) as session:
        yield session


def test_full_task_life(market: ChainSession) -> None:
    s, w3 = market, market.client.w3
    research, dev, analytics = s.agent(0), s.agent(1), s.agent(2)
    task_id = create_task(s, reward=2 * ETH, tags=["research"])
    assert s.tasks.status_of(task_id) == TaskStatus.OPEN
    assert w3.eth.get_balance(s.tasks.address) == s.tasks.total_escrowed() == 2 * ETH

    s.auction.place_bid(research, task_id, ETH)  # reputation 50 each: the cheapest wins
    s.auction.place_bid(analytics, task_id, ETH + ETH // 2)
    s.auction.place_bid(dev, task_id, ETH + ETH // 4)
    assert s.auction.bid_count(task_id) == 3
    advance_time(w3, 301)
    s.auction.finalize(s.requester, task_id)
    task = s.tasks.get_task(task_id)
    assert task.assignee == research.address and task.price == ETH
    assert s.tasks.status_of(task_id) == TaskStatus.ASSIGNED

    digest = bytes(range(32))
    s.tasks.submit_result(research, task_id, digest, "sha256:abc")
    assert s.tasks.get_task(task_id).resultHash == digest
    s.tasks.complete_task(s.evaluator, task_id, 90)
    assert s.tasks.status_of(task_id) == TaskStatus.COMPLETED
    assert s.incentives.credit_of(research.address) == ETH
    assert s.incentives.credit_of(s.requester.address) == ETH  # the unspent half of the escrow
    assert s.registry.reputation_of(research.address) == 50 + (90 - 50) // 5
    assert s.registry.capability_weight(research.address, "research") == 80 + (90 - 80) // 4
    assert s.tasks.total_escrowed() == 0 and w3.eth.get_balance(s.tasks.address) == 0

    before = w3.eth.get_balance(research.address)
    receipt = s.incentives.withdraw(research)
    gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert w3.eth.get_balance(research.address) == before + ETH - gas
    assert s.incentives.credit_of(research.address) == 0


def test_failed_task_refunds_requester_and_penalises(market: ChainSession) -> None:
    s = market
    task_id = create_task(s)
    s.auction.place_bid(s.agent(0), task_id, ETH // 2)
    advance_time(s.client.w3, 301)
    s.auction.finalize(s.requester, task_id)
    s.tasks.submit_result(s.agent(0), task_id, b"\x01" * 32, "")
    s.tasks.complete_task(s.requester, task_id, 20)
    assert s.tasks.status_of(task_id) == TaskStatus.FAILED
    assert s.incentives.credit_of(s.agent(0).address) == 0
    assert s.incentives.credit_of(s.requester.address) == ETH
    assert s.registry.reputation_of(s.agent(0).address) == 40


def test_unbid_task_expires_with_refund_and_cancel_refunds(market: ChainSession) -> None:
    s = market
    unbid = create_task(s)
    cancelled = create_task(s, reward=3 * ETH)
    s.tasks.cancel_task(s.requester, cancelled)
    advance_time(s.client.w3, 301)
    s.auction.finalize(s.agent(1), unbid)
    assert s.tasks.status_of(unbid) == TaskStatus.EXPIRED
    assert s.tasks.status_of(cancelled) == TaskStatus.CANCELLED
    assert s.incentives.credit_of(s.requester.address) == 4 * ETH
    assert s.tasks.total_escrowed() == 0


def test_assigned_task_past_execution_deadline_expires(market: ChainSession) -> None:
    s = market
    task_id = create_task(s)
    s.auction.place_bid(s.agent(0), task_id, ETH // 2)
    advance_time(s.client.w3, 301)
    s.auction.finalize(s.requester, task_id)
    with pytest.raises(b.DeadlineNotReached):
        s.tasks.expire_task(s.agent(1), task_id)
    advance_time(s.client.w3, 3601)
    with pytest.raises(b.ExecutionDeadlinePassed):
        s.tasks.submit_result(s.agent(0), task_id, b"\x01" * 32, "")
    s.tasks.expire_task(s.agent(1), task_id)
    assert s.tasks.status_of(task_id) == TaskStatus.EXPIRED
    assert s.registry.reputation_of(s.agent(0).address) == 40
    assert s.incentives.credit_of(s.requester.address) == ETH


def test_access_control_rules_revert_by_name(market: ChainSession) -> None:
    s, w3 = market, market.client.w3
    outsider = s.agent(5)  # funded, never registered
    with pytest.raises(b.ZeroReward):
        s.tasks.create_task(s.requester, "x", ["research"], 2**40, 3600, s.evaluator.address, value=0)
    task_id = create_task(s)
    with pytest.raises(b.NotRegisteredAgent):
        s.auction.place_bid(outsider, task_id, ETH // 2)
    s.auction.place_bid(s.agent(0), task_id, ETH // 2)
    with pytest.raises(b.AlreadyBid):
        s.auction.place_bid(s.agent(0), task_id, ETH // 3)
    with pytest.raises(b.BidOutOfRange):
        s.auction.place_bid(s.agent(1), task_id, 2 * ETH)
    with pytest.raises(b.BiddingStillOpen):
        s.auction.finalize(s.requester, task_id)
    advance_time(w3, 301)
    with pytest.raises(b.BiddingClosed):
        s.auction.place_bid(s.agent(1), task_id, ETH // 2)
    s.auction.finalize(s.requester, task_id)
    with pytest.raises(b.AlreadyFinalized):
        s.auction.finalize(s.requester, task_id)
    with pytest.raises(b.NotAssignee):
        s.tasks.submit_result(s.agent(1), task_id, b"\x01" * 32, "")
    with pytest.raises(b.InvalidStatus):
        s.tasks.complete_task(s.evaluator, task_id, 50)  # nothing submitted yet
    s.tasks.submit_result(s.agent(0), task_id, b"\x01" * 32, "")
    with pytest.raises(b.InvalidStatus):
        s.tasks.submit_result(s.agent(0), task_id, b"\x02" * 32, "")  # twice
    with pytest.raises(b.NotRequesterOrEvaluator):
        s.tasks.complete_task(s.agent(1), task_id, 50)
    with pytest.raises(b.ScoreOutOfRange):
        s.tasks.complete_task(s.evaluator, task_id, 101)
    s.tasks.complete_task(s.evaluator, task_id, 70)
    with pytest.raises(b.InvalidStatus):
        s.tasks.complete_task(s.evaluator, task_id, 70)  # nothing twice
    with pytest.raises(b.NothingToWithdraw):
        s.incentives.withdraw(outsider)


def test_size_limits_revert_by_name(market: ChainSession) -> None:
    s = market
    outsider = s.agent(5)
    with pytest.raises(b.StringTooLong):
        s.registry.register(outsider, "n" * 65, ["a"], [1])
    with pytest.raises(b.TooManyCapabilities):
        s.registry.register(outsider, "n", [f"c{i}" for i in range(17)], [1] * 17)
    with pytest.raises(b.LengthMismatch):
        s.registry.register(outsider, "n", ["a", "b"], [1])
    with pytest.raises(b.WeightOutOfRange):
        s.registry.register(outsider, "n", ["a"], [101])
    with pytest.raises(b.AlreadyRegistered):
        s.registry.register(s.agent(0), "again", ["a"], [1])
    with pytest.raises(b.TooManyTags):
        create_task(s, tags=[f"t{i}" for i in range(9)])
    with pytest.raises(b.StringTooLong):
        create_task(s, tags=["t" * 33])
    with pytest.raises(b.DeadlineInPast):
        create_task(s, window=-10)
    task_id = create_task(s)
    s.auction.place_bid(s.agent(0), task_id, ETH // 2)
    advance_time(s.client.w3, 301)
    s.auction.finalize(s.requester, task_id)
    with pytest.raises(b.StringTooLong):
        s.tasks.submit_result(s.agent(0), task_id, b"\x01" * 32, "u" * 257)
    with pytest.raises(b.PayloadTooLarge):
        s.messages.send_message(s.agent(0), s.agent(1).address, "topic", b"x" * 4097, task_id)


def test_requester_only_cancel_and_no_bids_on_cancelled(market: ChainSession) -> None:
    s = market
    task_id = create_task(s)
    with pytest.raises(b.NotRequester):
        s.tasks.cancel_task(s.agent(0), task_id)
    s.tasks.cancel_task(s.requester, task_id)
    with pytest.raises(b.TaskNotOpen):
        s.auction.place_bid(s.agent(0), task_id, ETH // 2)
    with pytest.raises(b.TaskNotFound):
        s.tasks.get_task(999)


def test_marketplace_filters_and_messages_and_actions(market: ChainSession) -> None:
    s = market
    ids = [create_task(s, tags=["research"]), create_task(s, tags=["coding"], reward=3 * ETH), create_task(s)]
    assert list(s.marketplace.open_tasks(0, 10)[0]) == ids
    assert list(s.marketplace.filter_tasks("coding", 0, 0, 10)[0]) == [ids[1]]
    assert list(s.marketplace.filter_tasks("", 2 * ETH, 0, 10)[0]) == [ids[1]]
    page, cursor = s.marketplace.open_tasks(0, 2)
    assert list(page) == ids[:2] and cursor != 0
    assert list(s.marketplace.open_tasks(cursor, 2)[0]) == ids[2:]
    with pytest.raises(b.LimitTooLarge):
        s.marketplace.open_tasks(0, 101)

    receipt = s.messages.send_message(s.agent(0), s.agent(1).address, "hello", b"\x99" * 10, ids[0])
    assert receipt["status"] == 1 and s.messages.inbox_count(s.agent(1).address) == 1
    with pytest.raises(b.RecipientNotRegistered):
        s.messages.send_message(s.agent(0), s.agent(5).address, "hello", b"x", 0)
    s.actions.log_action(s.agent(0), ids[0], "bid", b"\x05" * 32)
    assert s.actions.action_count(s.agent(0).address) == 1
    with pytest.raises(b.NotRegisteredAgent):
        s.actions.log_action(s.agent(5), ids[0], "bid", b"\x05" * 32)


def test_reputation_weighted_winner(market: ChainSession) -> None:
    """A cheaper bid from a low-reputation agent loses to a dearer one from a reputable agent."""
    s, w3 = market, market.client.w3
    for _ in range(3):  # agent 0 fails three tasks: reputation 50 -> 20
        task_id = create_task(s)
        s.auction.place_bid(s.agent(0), task_id, ETH // 10)
        advance_time(w3, 301)
        s.auction.finalize(s.requester, task_id)
        s.tasks.submit_result(s.agent(0), task_id, b"\x01" * 32, "")
        s.tasks.complete_task(s.requester, task_id, 0)
    assert s.registry.reputation_of(s.agent(0).address) == 20
    task_id = create_task(s)
    s.auction.place_bid(s.agent(0), task_id, ETH // 2)  # 0.5 * 100 / 21
    s.auction.place_bid(s.agent(2), task_id, ETH * 3 // 4)  # 0.75 * 100 / 51: better
    advance_time(w3, 301)
    s.auction.finalize(s.requester, task_id)
    assert s.tasks.get_task(task_id).assignee == s.agent(2).address
