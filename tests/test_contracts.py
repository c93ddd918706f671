"""Contract behaviour on both chains: a full task life in open mode with pushed payments, every
access-control and size rule by error name, the running best, and a payee that refuses ETH."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3
from web3.types import TxReceipt

from agentfleet.bidding.reward import weight_moved
from agentfleet.chain import bindings as b
from agentfleet.chain.connect import is_inprocess
from agentfleet.chain.local import advance_time, fund
from agentfleet.chain.market import content_hash, created_event, result_event, tag_id
from agentfleet.chain.session import ChainSession
from agentfleet.protocol import limits
from agentfleet.protocol.status import AuctionMode, TaskStatus
from testkit.chain import ETH, Refuser, create_task, deployed_market, now

NO_TAG = b"\0" * 32
ZERO_ADDRESS = "0x" + "00" * 20


@pytest.fixture(params=["inprocess", pytest.param("anvil", marks=pytest.mark.anvil)])
def market(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ChainSession]:
    with deployed_market(request.param, tmp_path) as session:
        yield session


def balance(s: ChainSession, address: str) -> int:
    return int(s.client.w3.eth.get_balance(Web3.to_checksum_address(address)))


def gas_of(receipt: TxReceipt) -> int:
    return int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])


def assign(s: ChainSession, task_id: int, bids: list[tuple[int, int]], *, wait: int = 301) -> None:
    """Agents bid (agent number, amount) in order, the deadline passes, anyone finalizes."""
    for number, amount in bids:
        s.auction.place_bid(s.agent(number), task_id, amount)
    advance_time(s.client.w3, wait)
    s.auction.finalize(s.agent(5), task_id)


# --- tests -----------------------------------------------------------------------------------------------
def test_full_task_life_pays_by_push(market: ChainSession) -> None:
    s, w3 = market, market.client.w3
    research, dev, analytics = s.agent(0), s.agent(1), s.agent(2)
    task_id = create_task(s, reward=2 * ETH, tags=["research", "writing-review"])
    task = s.tasks.get_task(task_id)
    assert (task.status, task.mode, task.reward, task.requester) == (
        TaskStatus.OPEN,
        AuctionMode.OPEN,
        2 * ETH,
        s.requester.address,
    )
    assert task.tags == [tag_id("research"), tag_id("writing-review")] and task.executionDuration == 3600
    assert balance(s, s.tasks.address) == 2 * ETH  # the TaskManager's balance is the escrow
    created = created_event(s, task_id)
    assert created is not None and created["contentHash"] == content_hash(created["description"])
    assert created["description"] == "Write a literature review" and created["mode"] == AuctionMode.OPEN

    s.auction.place_bid(research, task_id, ETH)  # reputation 50 each: the cheapest wins
    s.auction.place_bid(analytics, task_id, ETH + ETH // 2)
    s.auction.place_bid(dev, task_id, ETH + ETH // 4)
    assert tuple(s.auction.bid_of(task_id, dev.address)) == (ETH + ETH // 4, True)
    assert tuple(s.auction.bid_of(task_id, s.agent(5).address)) == (0, False)
    assert tuple(s.auction.candidate_of(task_id)) == (research.address, ETH)
    assert not s.auction.is_finalized(task_id)
    advance_time(w3, 301)
    s.auction.finalize(s.agent(5), task_id)  # anyone may, even an unregistered account
    task = s.tasks.get_task(task_id)
    assert (task.assignee, task.price, task.status) == (research.address, ETH, TaskStatus.ASSIGNED)
    assert task.executionDeadline >= now(s) + 3600 - 5 and task.executionDuration == 0
    assert s.auction.is_finalized(task_id)
    assert tuple(s.auction.candidate_of(task_id)) == (ZERO_ADDRESS, 0)  # cleared

    digest = bytes(range(32))
    s.tasks.submit_result(research, task_id, digest, "sha256:abc")
    submitted = result_event(s, task_id)
    assert submitted is not None and (submitted["resultHash"], submitted["resultURI"]) == (digest, "sha256:abc")
    before_agent, before_requester = balance(s, research.address), balance(s, s.requester.address)
    s.tasks.complete_task(s.evaluator, task_id, 90)
    assert s.tasks.status_of(task_id) == TaskStatus.COMPLETED and s.tasks.get_task(task_id).score == 90
    assert balance(s, research.address) == before_agent + ETH  # pushed: no withdrawal needed
    assert balance(s, s.requester.address) == before_requester + ETH  # the unspent half of the escrow
    assert balance(s, s.tasks.address) == balance(s, s.incentives.address) == s.incentives.total_credits() == 0
    assert s.registry.reputation_of(research.address) == 50 + (90 - 50) // 5
    assert s.registry.capability_weight(research.address, "research") == weight_moved(80, 90) == 82
    assert tuple(s.registry.capability_weight_of(research.address, tag_id("research"))) == (True, 82)
    assert s.registry.capability_weight(research.address, "writing") == 70  # not a tag of the task
    assert tuple(s.registry.standing(research.address)) == (True, True, 58)
    with pytest.raises(b.NothingToWithdraw):
        s.incentives.withdraw(research)


def test_failed_task_refunds_requester_and_penalises(market: ChainSession) -> None:
    s = market
    task_id = create_task(s, tags=["research"])
    assign(s, task_id, [(0, ETH // 2)])
    s.tasks.submit_result(s.agent(0), task_id, b"\x01" * 32, "")
    before_agent, before_requester = balance(s, s.agent(0).address), balance(s, s.requester.address)
    s.tasks.complete_task(s.evaluator, task_id, 23)
    assert s.tasks.status_of(task_id) == TaskStatus.FAILED
    assert balance(s, s.agent(0).address) == before_agent
    assert balance(s, s.requester.address) == before_requester + ETH
    assert s.registry.reputation_of(s.agent(0).address) == 40
    # a quarter of the way to 23, truncated toward zero (80 - 14): the rule the simulator's weights follow
    assert s.registry.capability_weight(s.agent(0).address, "research") == weight_moved(80, 23) == 66
    assert s.incentives.total_credits() == 0


def test_unbid_task_expires_with_refund_and_cancel_refunds(market: ChainSession) -> None:
    s = market
    unbid = create_task(s)
    cancelled = create_task(s, reward=3 * ETH)
    assert balance(s, s.tasks.address) == 4 * ETH
    before = balance(s, s.requester.address)
    receipt = s.tasks.cancel_task(s.requester, cancelled)
    assert balance(s, s.requester.address) == before + 3 * ETH - gas_of(receipt)
    assert not s.auction.is_finalized(cancelled)
    advance_time(s.client.w3, 301)
    before = balance(s, s.requester.address)
    s.auction.finalize(s.agent(1), unbid)
    assert balance(s, s.requester.address) == before + ETH
    assert s.tasks.status_of(unbid) == TaskStatus.EXPIRED and s.auction.is_finalized(unbid)
    assert s.tasks.status_of(cancelled) == TaskStatus.CANCELLED
    assert s.tasks.get_task(unbid).executionDuration == 3600  # never assigned: the duration still shows
    assert balance(s, s.tasks.address) == balance(s, s.incentives.address) == 0


def test_assigned_task_past_execution_deadline_expires(market: ChainSession) -> None:
    s = market
    task_id = create_task(s)
    assign(s, task_id, [(0, ETH // 2)])
    with pytest.raises(b.DeadlineNotReached):
        s.tasks.expire_task(s.agent(1), task_id)
    advance_time(s.client.w3, 3601)
    with pytest.raises(b.ExecutionDeadlinePassed):
        s.tasks.submit_result(s.agent(0), task_id, b"\x01" * 32, "")
    before = balance(s, s.requester.address)
    s.tasks.expire_task(s.agent(1), task_id)
    assert s.tasks.status_of(task_id) == TaskStatus.EXPIRED
    assert s.registry.reputation_of(s.agent(0).address) == 40
    assert balance(s, s.requester.address) == before + ETH
    with pytest.raises(b.InvalidStatus):
        s.tasks.expire_task(s.agent(1), task_id)


def test_create_task_rules_revert_by_name(market: ChainSession) -> None:
    s, w3 = market, market.client.w3
    text = "Summarise the paper"
    good: dict[str, Any] = {
        "content_hash": content_hash(text),
        "content_uri": "",
        "description": text,
        "tags": [tag_id("research")],
        "bidding_deadline": now(s) + 300,
        "execution_duration": 3600,
        "evaluator": s.evaluator.address,
        "mode": int(AuctionMode.OPEN),
    }

    def create(value: int = ETH, **changes: Any) -> TxReceipt:
        return s.tasks.create_task(s.requester, **{**good, **changes}, value=value)

    with pytest.raises(b.ZeroReward):
        create(value=0)
    with pytest.raises(b.ContentMismatch):
        create(description="Summarise another paper")
    with pytest.raises(b.EmptyContentHash):
        create(content_hash=b"\0" * 32, description="")
    with pytest.raises(b.TooManyTags):
        create(tags=[tag_id(f"t{i}") for i in range(limits.MAX_TAGS + 1)])
    with pytest.raises(b.InvalidId):
        create(tags=[NO_TAG])
    with pytest.raises(b.InvalidId):
        create(tags=[b"\0research".ljust(32, b"\0")])
    with pytest.raises(b.DeadlineInPast):
        create(bidding_deadline=now(s) - 10)
    with pytest.raises(b.ZeroDuration):
        create(execution_duration=0)
    with pytest.raises(b.StringTooLong):
        create(content_hash=content_hash("d" * 2049), description="d" * 2049)
    with pytest.raises(b.StringTooLong):
        create(description="", content_uri="u" * (limits.MAX_URI_BYTES + 1))
    if not is_inprocess(w3):  # eth-tester's accounts hold less than the 2**80 wei it takes
        fund(w3, s.requester.address, 2**81)
        with pytest.raises(b.RewardTooLarge):
            create(value=limits.MAX_REWARD + 1)
    # the text may stay off chain (only its hash and a URI); the limits are exactly the limits
    create(description="", content_uri="ipfs://text", tags=[tag_id(f"t{i}") for i in range(limits.MAX_TAGS)])
    task_id = s.tasks.task_count()
    event = created_event(s, task_id)
    assert event is not None and (event["description"], event["contentURI"]) == ("", "ipfs://text")
    assert len(s.tasks.get_tags(task_id)) == limits.MAX_TAGS


def test_access_control_rules_revert_by_name(market: ChainSession) -> None:
    s, w3 = market, market.client.w3
    outsider = s.agent(5)  # funded, never registered
    task_id = create_task(s)
    with pytest.raises(b.NotRegisteredAgent):
        s.auction.place_bid(outsider, task_id, ETH // 2)
    with pytest.raises(b.RequesterCannotBid):
        s.auction.place_bid(s.requester, task_id, ETH // 2)
    s.auction.place_bid(s.agent(0), task_id, ETH // 2)
    with pytest.raises(b.AlreadyBid):
        s.auction.place_bid(s.agent(0), task_id, ETH // 3)  # one bid per agent, no lowering
    with pytest.raises(b.BidOutOfRange):
        s.auction.place_bid(s.agent(1), task_id, ETH + 1)
    with pytest.raises(b.BidOutOfRange):
        s.auction.place_bid(s.agent(1), task_id, 0)
    s.registry.deactivate(s.agent(2))
    with pytest.raises(b.AgentInactive):
        s.auction.place_bid(s.agent(2), task_id, ETH // 2)
    with pytest.raises(b.AgentInactive):
        s.registry.deactivate(s.agent(2))
    with pytest.raises(b.BiddingStillOpen):
        s.auction.finalize(s.requester, task_id)
    with pytest.raises(b.TaskNotFound):
        s.auction.place_bid(s.agent(0), 999, 1)
    # only the contracts' wiring may call their internal entry points
    with pytest.raises(b.NotAuction):
        s.tasks.assign(s.requester, task_id, s.agent(0).address, 1)
    with pytest.raises(b.NotAuction):
        s.tasks.expire_unbid(s.requester, task_id)
    with pytest.raises(b.NotTaskManager):
        s.auction.open_auction(s.requester, task_id, s.requester.address, ETH, now(s) + 100)
    with pytest.raises(b.NotTaskManager):
        s.incentives.refund(s.requester, task_id, s.requester.address, value=1)
    with pytest.raises(b.NotIncentiveEngine):
        s.registry.set_reputation(s.requester, s.agent(0).address, 100)
    with pytest.raises(b.AlreadyWired):
        s.tasks.set_auction(s.deployer, s.agent(0).address)
    advance_time(w3, 301)
    with pytest.raises(b.BiddingClosed):
        s.auction.place_bid(s.agent(1), task_id, ETH // 2)
    with pytest.raises(b.BiddingClosed):
        s.tasks.cancel_task(s.requester, task_id)  # too late to take the task back from the bidders
    s.auction.finalize(s.requester, task_id)
    with pytest.raises(b.AlreadyFinalized):
        s.auction.finalize(s.requester, task_id)
    with pytest.raises(b.NotAssignee):
        s.tasks.submit_result(s.agent(1), task_id, b"\x01" * 32, "")
    with pytest.raises(b.InvalidStatus):
        s.tasks.complete_task(s.evaluator, task_id, 50)  # nothing submitted yet
    with pytest.raises(b.EmptyResult):
        s.tasks.submit_result(s.agent(0), task_id, NO_TAG, "")
    with pytest.raises(b.StringTooLong):
        s.tasks.submit_result(s.agent(0), task_id, b"\x01" * 32, "u" * (limits.MAX_URI_BYTES + 1))
    s.tasks.submit_result(s.agent(0), task_id, b"\x01" * 32, "")
    with pytest.raises(b.InvalidStatus):
        s.tasks.submit_result(s.agent(0), task_id, b"\x02" * 32, "")  # twice
    with pytest.raises(b.NotRequesterOrEvaluator):
        s.tasks.complete_task(s.agent(1), task_id, 50)
    with pytest.raises(b.ScoreOutOfRange):
        s.tasks.complete_task(s.evaluator, task_id, 101)
    s.tasks.complete_task(s.requester, task_id, 70)  # the requester may score too
    with pytest.raises(b.InvalidStatus):
        s.tasks.complete_task(s.evaluator, task_id, 70)  # nothing twice
    with pytest.raises(b.NothingToWithdraw):
        s.incentives.withdraw(outsider)


def test_registry_and_message_limits_revert_by_name(market: ChainSession) -> None:
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
    # eth-tester reports an error whose only argument is a string as a revert reason; the client finds the
    # data on the py-evm exception behind it, so the error has its name on both chains
    with pytest.raises(b.DuplicateCapability):
        s.registry.register(outsider, "n", ["a", "a"], [1, 2])
    with pytest.raises(b.StringTooLong):
        s.registry.register(outsider, "n", ["c" * 33], [1])
    with pytest.raises(b.AlreadyRegistered):
        s.registry.register(s.agent(0), "again", ["a"], [1])
    with pytest.raises(b.PayloadTooLarge):
        s.messages.send_message(s.agent(0), s.agent(1).address, "topic", b"x" * 4097, 0)


def test_requester_only_cancel_and_no_bids_on_cancelled(market: ChainSession) -> None:
    s = market
    task_id = create_task(s)
    s.auction.place_bid(s.agent(0), task_id, ETH // 2)
    with pytest.raises(b.NotRequester):
        s.tasks.cancel_task(s.agent(0), task_id)
    s.tasks.cancel_task(s.requester, task_id)
    assert tuple(s.auction.candidate_of(task_id)) == (ZERO_ADDRESS, 0)
    with pytest.raises(b.TaskNotOpen):
        s.auction.place_bid(s.agent(1), task_id, ETH // 2)
    advance_time(s.client.w3, 301)
    with pytest.raises(b.TaskNotOpen):
        s.auction.finalize(s.agent(1), task_id)
    with pytest.raises(b.InvalidStatus):
        s.tasks.cancel_task(s.requester, task_id)
    with pytest.raises(b.TaskNotFound):
        s.tasks.get_task(999)


def test_marketplace_filters_and_messages_and_actions(market: ChainSession) -> None:
    s = market
    ids = [
        create_task(s, tags=["research"]),
        create_task(s, tags=["coding", "testing"], reward=3 * ETH),
        create_task(s, mode=AuctionMode.SEALED),
    ]
    cancelled = create_task(s)
    s.tasks.cancel_task(s.requester, cancelled)  # not open any more: never listed
    assert list(s.marketplace.open_tasks(0, 10)[0]) == ids
    assert list(s.marketplace.filter_tasks(tag_id("testing"), 0, 0, 10)[0]) == [ids[1]]
    assert list(s.marketplace.filter_tasks(tag_id("research"), 0, 0, 10)[0]) == [ids[0], ids[2]]
    assert list(s.marketplace.filter_tasks(tag_id("writing"), 0, 0, 10)[0]) == []
    assert list(s.marketplace.filter_tasks(NO_TAG, 2 * ETH, 0, 10)[0]) == [ids[1]]
    assert list(s.marketplace.tasks_by_requester(s.requester.address, 0, 10)[0]) == ids
    assert list(s.marketplace.tasks_by_requester(s.agent(0).address, 0, 10)[0]) == []
    page, cursor = s.marketplace.open_tasks(0, 2)
    assert list(page) == ids[:2] and cursor != 0
    assert list(s.marketplace.open_tasks(cursor, 2)[0]) == ids[2:]
    with pytest.raises(b.LimitTooLarge):
        s.marketplace.open_tasks(0, 101)
    advance_time(s.client.w3, 301)
    assert list(s.marketplace.open_tasks(0, 10)[0]) == []  # past their deadlines

    receipt = s.messages.send_message(s.agent(0), s.agent(1).address, "hello", b"\x99" * 10, ids[0])
    assert receipt["status"] == 1 and s.messages.inbox_count(s.agent(1).address) == 1
    with pytest.raises(b.RecipientNotRegistered):
        s.messages.send_message(s.agent(0), s.agent(5).address, "hello", b"x", 0)
    s.actions.log_action(s.agent(0), ids[0], "bid", b"\x05" * 32)
    assert s.actions.action_count(s.agent(0).address) == 1
    with pytest.raises(b.NotRegisteredAgent):
        s.actions.log_action(s.agent(5), ids[0], "bid", b"\x05" * 32)


def fail_task(s: ChainSession, number: int) -> None:
    """Agent ``number`` wins a task alone and scores 0: reputation -10."""
    task_id = create_task(s)
    assign(s, task_id, [(number, ETH // 10)])
    s.tasks.submit_result(s.agent(number), task_id, b"\x01" * 32, "")
    s.tasks.complete_task(s.evaluator, task_id, 0)


def test_running_best_weighs_reputation_at_bid_time(market: ChainSession) -> None:
    """The winner has the lowest amount / (reputation + 1), exactly, with the reputation its bid carried;
    ties go to the earlier bid."""
    s, w3 = market, market.client.w3
    long_ = create_task(s, window=5000)
    assert tuple(s.auction.candidate_of(long_)) == (ZERO_ADDRESS, 0)
    s.auction.place_bid(s.agent(0), long_, ETH // 2)  # at reputation 50
    fail_task(s, 0)
    assert s.registry.reputation_of(s.agent(0).address) == 40

    cheaper_loses = create_task(s)
    s.auction.place_bid(s.agent(0), cheaper_loses, ETH // 2)  # 0.5 / 41
    assert tuple(s.auction.candidate_of(cheaper_loses)) == (s.agent(0).address, ETH // 2)
    s.auction.place_bid(s.agent(2), cheaper_loses, ETH * 6 // 10)  # 0.6 / 51: better although dearer
    assert tuple(s.auction.candidate_of(cheaper_loses)) == (s.agent(2).address, ETH * 6 // 10)

    tie = create_task(s)
    s.auction.place_bid(s.agent(0), tie, 41 * 10**15)  # 41 / 41
    s.auction.place_bid(s.agent(2), tie, 51 * 10**15)  # 51 / 51: a tie, the earlier bid stays
    assert tuple(s.auction.candidate_of(tie)) == (s.agent(0).address, 41 * 10**15)
    s.auction.place_bid(s.agent(1), tie, 51 * 10**15 - 1)  # one wei less: strictly better
    assert tuple(s.auction.candidate_of(tie)) == (s.agent(1).address, 51 * 10**15 - 1)

    # agent 0's bid on the long task still carries reputation 50: 0.5 / 51 beats 0.55 / 51 (with its
    # reputation now, 0.5 / 41, it would lose)
    s.auction.place_bid(s.agent(2), long_, ETH * 55 // 100)
    assert tuple(s.auction.candidate_of(long_)) == (s.agent(0).address, ETH // 2)

    advance_time(w3, 301)
    for task_id in (cheaper_loses, tie):
        s.auction.finalize(s.requester, task_id)
    assert s.tasks.get_task(cheaper_loses).assignee == s.agent(2).address
    assert (s.tasks.get_task(tie).assignee, s.tasks.get_task(tie).price) == (s.agent(1).address, 51 * 10**15 - 1)
    advance_time(w3, 5000)
    s.auction.finalize(s.requester, long_)
    assert (s.tasks.get_task(long_).assignee, s.tasks.get_task(long_).price) == (s.agent(0).address, ETH // 2)


def test_a_payee_that_refuses_the_push_is_credited(market: ChainSession) -> None:
    """A requester contract whose receive needs more than the stipend: its share is credited, the agent's
    is still pushed, and the contract withdraws later."""
    s = market
    refuser = Refuser(s, s.agent(5))
    task_id = refuser.create_task(reward=2 * ETH)
    assert s.tasks.get_task(task_id).requester == refuser.address
    assign(s, task_id, [(0, ETH // 2)])
    s.tasks.submit_result(s.agent(0), task_id, b"\x01" * 32, "")
    before = balance(s, s.agent(0).address)
    s.tasks.complete_task(s.evaluator, task_id, 80)
    assert balance(s, s.agent(0).address) == before + ETH // 2  # pushed as usual
    assert s.incentives.credit_of(refuser.address) == 2 * ETH - ETH // 2  # refused: credited
    assert balance(s, refuser.address) == 0

    cancelled = refuser.create_task(reward=ETH)
    refuser.call(s.tasks.contract.functions.cancelTask(cancelled))
    credit = 2 * ETH - ETH // 2 + ETH
    assert s.incentives.credit_of(refuser.address) == s.incentives.total_credits() == credit
    assert balance(s, s.incentives.address) == credit and balance(s, s.tasks.address) == 0
    with pytest.raises(b.NotRequester):
        s.tasks.cancel_task(s.requester, refuser.create_task(reward=1))

    refuser.call(s.incentives.contract.functions.withdraw())  # with enough gas it accepts
    assert balance(s, refuser.address) == credit
    assert s.incentives.credit_of(refuser.address) == s.incentives.total_credits() == 0
    assert balance(s, s.incentives.address) == 0
    with pytest.raises(b.NothingToWithdraw):
        refuser.call(s.incentives.contract.functions.withdraw())
