"""Hypothesis stateful test: random sequences of creating tasks in both auction modes, open bids, signed
sealed bids, finalizing, submitting, scoring, cancelling, expiring and withdrawing, checked against a model
of the market, on both chains. Invariants: every status, winner and reputation is the model's; the escrow
is conserved (the TaskManager holds exactly the rewards of live tasks, the IncentiveEngine exactly its
credits, every account's balance moved by what the model paid it minus its gas); every task the machine
finishes ends in a final status with nothing left in escrow."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from web3 import Web3

from agentfleet.bidding.sealed import SealedBid, sign_bid
from agentfleet.chain.connect import is_inprocess
from agentfleet.chain.errors import ContractRevert
from agentfleet.chain.local import advance_time
from agentfleet.chain.market import TaskSpec, post_task
from agentfleet.chain.nonces import LocalNonceAllocator
from agentfleet.chain.session import ChainSession
from agentfleet.protocol import limits
from agentfleet.protocol.status import FINAL_STATUSES, AuctionMode, TaskStatus
from testkit.chain import ETH, Refuser, deployed_market, now

AGENTS = 3
LIVE = {TaskStatus.OPEN, TaskStatus.ASSIGNED, TaskStatus.SUBMITTED}  # the reward is still in escrow
DURATION = 1200  # seconds an assigned task has to deliver
MARGIN = 5  # seconds: closer than this to a deadline, the block that mines a call may fall either side


@pytest.fixture(params=["inprocess", pytest.param("anvil", marks=pytest.mark.anvil)])
def market(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ChainSession]:
    with deployed_market(request.param, tmp_path) as session:
        yield session


def snapshotter(session: ChainSession) -> tuple[Callable[[], Any], Callable[[Any], None]]:
    w3 = session.client.w3
    if is_inprocess(w3):
        tester = w3.provider.ethereum_tester  # type: ignore[attr-defined]
        return tester.take_snapshot, tester.revert_to_snapshot

    def take() -> Any:
        return w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]

    def revert(snapshot: Any) -> None:
        w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]

    return take, revert


@dataclass
class Task:
    """The model of one task."""

    id: int
    reward: int
    mode: AuctionMode
    deadline: int
    by_contract: bool  # posted by the Refuser (its refunds are credited, not pushed)
    status: TaskStatus = TaskStatus.OPEN
    bids: list[tuple[int, int, int]] = field(default_factory=list)  # open: (agent, amount, reputation) in order
    signed: dict[int, tuple[SealedBid, bool]] = field(default_factory=dict)  # sealed: agent -> (bid, genuine)
    assignee: int | None = None
    price: int = 0
    execution_deadline: int = 0


def better(a: int, ra: int, b: int, rb: int) -> bool:
    """a / (ra + 1) < b / (rb + 1), exactly (BidAuction._better)."""
    return a * (rb + 1) < b * (ra + 1)


def test_escrow_is_conserved_and_reputation_bounded(market: ChainSession) -> None:
    s = market
    w3 = s.client.w3
    take, revert = snapshotter(s)
    agents = [s.agent(i) for i in range(AGENTS)]
    participants = [s.requester, *agents]  # who may act as a stranger
    refuser = Refuser(s, s.requester)  # a requester contract that refuses pushed ETH
    forger = s.account(20)
    eoas = [s.requester, s.evaluator, *agents]
    holders = [a.address for a in eoas] + [refuser.address, s.tasks.address, s.incentives.address, s.auction.address]
    state: dict[str, Any] = {"snapshot": take()}
    succeeded: dict[str, int] = {}

    def balance(address: str) -> int:
        return int(w3.eth.get_balance(Web3.to_checksum_address(address)))

    class Market(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            revert(state["snapshot"])
            state["snapshot"] = take()  # anvil consumes a snapshot on revert
            s.client.nonces = LocalNonceAllocator()  # the chain went back: forget counted nonces
            self.tasks: dict[int, Task] = {}
            self.reputation = [limits.INITIAL_REPUTATION] * AGENTS
            self.credit = 0  # the Refuser's credit in the IncentiveEngine
            self.start = {a: balance(a) for a in holders}
            self.total = sum(self.start.values())
            self.delta = dict.fromkeys(holders, 0)  # what the model moved in or out of each account, gas apart
            self.gas = dict.fromkeys(holders, 0)
            self.block = int(w3.eth.block_number)
            self.settled: set[int] = set()  # tasks seen in a final status on chain

        # --- model -------------------------------------------------------------------------------------
        def decide(self, ok_at: Callable[[int], bool]) -> bool | None:
            """What the model expects of a call whose outcome depends on the time: the block that mines it
            carries a timestamp between the latest block's (eth-tester estimates there) and the pending
            block's plus a margin; None when the outcome differs across that range."""
            latest = int(w3.eth.get_block("latest")["timestamp"])
            pending = now(s)
            outcomes = {ok_at(latest), ok_at(pending), ok_at(pending + MARGIN)}
            return outcomes.pop() if len(outcomes) == 1 else None

        def expect(self, name: str, ok: bool | None, action: Callable[[], Any]) -> bool:
            """Run a transaction the model expects to succeed (True), to revert by name (False) or either
            (None: a deadline too close to call)."""
            try:
                action()
            except ContractRevert as exc:
                assert ok is not True, f"{name} was refused: {exc!r}"
                return False
            assert ok is not False, f"{name} went through"
            succeeded[name] = succeeded.get(name, 0) + 1
            return True

        def as_requester(self, task: Task, fn: Any) -> None:
            """Send ``fn`` as the task's requester (through the Refuser for its tasks)."""
            if task.by_contract:
                refuser.call(fn)
            else:
                s.client.transact(s.requester, fn)

        def pay_requester(self, task: Task, amount: int) -> None:
            if task.by_contract:
                self.credit += amount  # the Refuser refuses the push
            else:
                self.delta[s.requester.address] += amount

        def settle(self, task: Task, score: int) -> None:
            assert task.assignee is not None
            rep = self.reputation[task.assignee]
            if score >= limits.PASS_SCORE:
                task.status = TaskStatus.COMPLETED
                self.reputation[task.assignee] = min(100, rep + (score - limits.PASS_SCORE) // limits.REPUTATION_STEP)
                self.delta[agents[task.assignee].address] += task.price
                self.pay_requester(task, task.reward - task.price)
            else:
                task.status = TaskStatus.FAILED
                self.reputation[task.assignee] = max(0, rep - limits.FAILURE_PENALTY)
                self.pay_requester(task, task.reward)

        def assigned(self, task: Task, winner: int | None, price: int) -> None:
            """The auction closed: check the chain chose the model's winner."""
            if winner is None:
                task.status = TaskStatus.EXPIRED
                self.pay_requester(task, task.reward)
                return
            task.status, task.assignee, task.price = TaskStatus.ASSIGNED, winner, price
            chain = s.tasks.get_task(task.id)
            assert (chain.assignee, chain.price) == (agents[winner].address, price), (chain, winner, price)
            task.execution_deadline = chain.executionDeadline

        # --- rules -------------------------------------------------------------------------------------
        @initialize(rewards=st.lists(st.integers(1, 5), min_size=3, max_size=3))
        def open_market(self, rewards: list[int]) -> None:
            """Start every sequence with tasks at several stages in both modes (submitted, assigned, cancelled
            with its refund credited to the Refuser, open for bids), so even short random sequences reach
            settlement, expiry, refunds and credits."""
            first = self.post(rewards[0], 60, AuctionMode.OPEN, False)
            for agent in range(2):
                self.bid(first, agent, first.reward * (50 + 10 * agent) // 100, honest=True, expiry_in=7200)
            second = self.post(rewards[1], 60, AuctionMode.SEALED, True)  # posted by the Refuser
            for agent in range(AGENTS):
                self.bid(second, agent, second.reward * (50 + 10 * agent) // 100, honest=True, expiry_in=7200)
            self.cancel(self.post(rewards[2], 60, AuctionMode.OPEN, True), None)
            advance_time(w3, 61)
            self.finalize(first, s.agent(0), [])
            self.finalize(second, None, list(second.signed))
            assert first.assignee is not None
            self.submit(first, agents[first.assignee])
            self.post(rewards[0], 300, AuctionMode.SEALED, False)

        @precondition(lambda self: sum(task.status not in FINAL_STATUSES for task in self.tasks.values()) < 6)
        @rule(
            reward=st.integers(1, 5),
            window=st.sampled_from([60, 300, 1200]),
            mode=st.sampled_from(AuctionMode),
            by_contract=st.integers(0, 3).map(lambda n: n == 3),
        )
        def create(self, reward: int, window: int, mode: AuctionMode, by_contract: bool) -> None:
            self.post(reward, window, mode, by_contract)

        def post(self, reward: int, window: int, mode: AuctionMode, by_contract: bool) -> Task:
            if by_contract:
                task_id = refuser.create_task(reward=reward * ETH, window=window, mode=mode, duration=DURATION)
            else:
                spec = TaskSpec("t", ("research",), reward * ETH, now(s) + window, DURATION, s.evaluator.address, mode)
                task_id = post_task(s, s.requester, spec)
            deadline = s.tasks.get_task(task_id).biddingDeadline
            task = self.tasks[task_id] = Task(task_id, reward * ETH, mode, deadline, by_contract)
            self.delta[s.requester.address] -= reward * ETH  # the Refuser forwards the requester's value
            succeeded["create"] = succeeded.get("create", 0) + 1
            return task

        def bid(self, task: Task, agent: int, amount: int, *, honest: bool, expiry_in: int) -> None:
            if task.mode == AuctionMode.OPEN:
                bidder = agents[agent] if honest else s.requester  # the requester cannot bid
                taken = any(a == agent for a, _, _ in task.bids)
                ok = honest and 0 < amount <= task.reward and not taken and self.decide(lambda t: t < task.deadline)
                if self.expect("bid", ok, lambda: s.auction.place_bid(bidder, task.id, amount)):
                    task.bids.append((agent, amount, self.reputation[agent]))
            elif agent not in task.signed:  # the book keeps an agent's first bid
                signer = agents[agent] if honest else forger
                bid = sign_bid(
                    signer,
                    chain_id=s.client.chain_id,
                    auction=s.auction.address,
                    task_id=task.id,
                    amount=amount,
                    expiry=now(s) + expiry_in,
                ).model_copy(update={"agent": agents[agent].address})
                task.signed[agent] = (bid, honest)
                succeeded["sign"] = succeeded.get("sign", 0) + 1

        def finalize(self, task: Task, caller: LocalAccount | None, chosen: list[int]) -> None:
            """Close the auction: open mode by ``caller``; sealed mode with the ``chosen`` agents' signed
            bids, by ``caller`` or (None) the task's requester."""
            if task.mode == AuctionMode.OPEN:
                winner, price, best_rep = None, 0, 0
                for agent, amount, rep in task.bids:  # in bid order: ties stay with the earlier bid
                    if winner is None or better(amount, rep, price, best_rep):
                        winner, price, best_rep = agent, amount, rep
                sender = caller or s.agent(0)  # anyone may
                ok = self.decide(lambda t: t >= task.deadline)
                if self.expect("finalize", ok, lambda: s.auction.finalize(sender, task.id)):
                    self.assigned(task, winner, price)
                return
            signed = sorted((task.signed[a] for a in chosen), key=lambda pair: int(pair[0].agent, 16))
            bids = [bid for bid, _ in signed]
            requester = caller is None or (not task.by_contract and caller.address == s.requester.address)

            def ok_at(t: int) -> bool:
                if t < task.deadline:
                    return False  # BiddingStillOpen
                if t > task.deadline + limits.REVEAL_WINDOW:
                    return not bids  # the bids are void: anyone closes with none
                return requester and all(
                    genuine and 0 < bid.amount <= task.reward and bid.expiry >= t for bid, genuine in signed
                )

            fn = s.auction.contract.functions.finalizeSealed(task.id, [bid.call_arg() for bid in bids])
            reputation = list(self.reputation)  # read at finalize
            action = partial(self.as_requester, task, fn) if caller is None else partial(s.client.transact, caller, fn)
            if self.expect("finalize_sealed", self.decide(ok_at), action):
                winner, price = None, 0
                for bid in bids:  # sorted by address: ties stay with the lower one
                    agent = next(a for a in chosen if task.signed[a][0] is bid)
                    if winner is None or better(bid.amount, reputation[agent], price, reputation[winner]):
                        winner, price = agent, bid.amount
                self.assigned(task, winner, price)

        def submit(self, task: Task, sender: Any) -> None:
            assert task.assignee is not None
            honest = sender.address == agents[task.assignee].address
            ok = honest and self.decide(lambda t: t <= task.execution_deadline)
            if self.expect("submit", ok, partial(s.tasks.submit_result, sender, task.id, b"\x08" * 32, "r")):
                task.status = TaskStatus.SUBMITTED

        def cancel(self, task: Task, sender: LocalAccount | None) -> None:
            """The requester (None) or ``sender`` cancels the task."""
            requester = sender is None or (not task.by_contract and sender.address == s.requester.address)
            ok = requester and task.status == TaskStatus.OPEN and self.decide(lambda t: t < task.deadline)
            fn = s.tasks.contract.functions.cancelTask(task.id)
            action = partial(self.as_requester, task, fn) if sender is None else partial(s.client.transact, sender, fn)
            if self.expect("cancel", ok, action):
                task.status = TaskStatus.CANCELLED
                self.pay_requester(task, task.reward)

        def expire(self, task: Task) -> None:
            ok = task.status == TaskStatus.ASSIGNED and self.decide(lambda t: t > task.execution_deadline)
            if self.expect("expire", ok, partial(s.tasks.expire_task, s.agent(1), task.id)):
                self.expired(task)

        def advance(self, data: st.DataObject, score: int, agent: int, fraction: int, expiry_in: int, way: int) -> None:
            """The next step of an unfinished task's life. ``way`` 0-2: the usual step by the right party, so
            sequences go deep (bid or sign, finalize with signed bids, submit, the evaluator scores); 3: the
            other legal step (the requester cancels, lets the reveal window pass, scores itself; the agent
            never delivers and the task expires); 4: a wrong party, amount or time, so the rules get broken."""
            unfinished = [task for task in self.tasks.values() if task.status not in FINAL_STATUSES]
            task = data.draw(st.sampled_from(unfinished or list(self.tasks.values())))
            stranger = participants[data.draw(st.integers(0, AGENTS))]
            clock = now(s)
            if task.status == TaskStatus.OPEN and clock < task.deadline:
                if way == 3:
                    self.cancel(task, None)
                elif way == 4 and data.draw(st.booleans()):
                    self.cancel(task, stranger)
                else:
                    self.bid(task, agent, task.reward * fraction // 100, honest=way < 4, expiry_in=expiry_in)
            elif task.status == TaskStatus.OPEN:
                if way == 3 and task.mode == AuctionMode.SEALED:  # the requester never reveals
                    if clock <= task.deadline + limits.REVEAL_WINDOW:
                        advance_time(w3, task.deadline + limits.REVEAL_WINDOW + 1 - clock)
                    self.finalize(task, stranger, [])
                else:
                    chosen = (
                        data.draw(st.lists(st.sampled_from(sorted(task.signed)), unique=True)) if task.signed else []
                    )
                    self.finalize(task, None if way < 4 else stranger, chosen)  # open mode: anyone finalizes
            elif task.status == TaskStatus.ASSIGNED:
                assert task.assignee is not None
                if way == 3:  # the agent never delivers
                    if clock <= task.execution_deadline:
                        advance_time(w3, task.execution_deadline + 1 - clock)
                    self.expire(task)
                elif way == 4 and data.draw(st.booleans()):
                    self.expire(task)  # too early, mostly
                else:
                    self.submit(task, agents[task.assignee] if way < 4 else stranger)
            elif task.status == TaskStatus.SUBMITTED:
                scorer = s.evaluator if way < 3 else s.requester if way == 3 else stranger
                ok = scorer == s.evaluator or (scorer.address == s.requester.address and not task.by_contract)
                if self.expect("complete", ok, partial(s.tasks.complete_task, scorer, task.id, score)):
                    self.settle(task, score)

        # two rules for the same step: most steps move a task on (hypothesis draws rules uniformly)
        step = rule(
            data=st.data(),
            score=st.integers(0, 100),
            agent=st.integers(0, AGENTS - 1),
            fraction=st.integers(0, 120).map(lambda f: 50 if f == 0 else f),
            expiry_in=st.sampled_from([7200, 7200, 60]),
            way=st.integers(0, 4),  # hypothesis shrinks toward 0: the simple case is the usual one
        )

        @precondition(lambda self: self.tasks)
        @step
        def advance_task(
            self, data: st.DataObject, score: int, agent: int, fraction: int, expiry_in: int, way: int
        ) -> None:
            self.advance(data, score, agent, fraction, expiry_in, way)

        @precondition(lambda self: self.tasks)
        @step
        def advance_another_task(
            self, data: st.DataObject, score: int, agent: int, fraction: int, expiry_in: int, way: int
        ) -> None:
            self.advance(data, score, agent, fraction, expiry_in, way)

        @rule(seconds=st.sampled_from([30, 120, 400, 2000]))
        def wait(self, seconds: int) -> None:
            advance_time(w3, seconds)

        def expired(self, task: Task) -> None:
            assert task.assignee is not None
            task.status = TaskStatus.EXPIRED
            self.reputation[task.assignee] = max(0, self.reputation[task.assignee] - limits.FAILURE_PENALTY)
            self.pay_requester(task, task.reward)

        @rule()
        def withdraw(self) -> None:
            ok = self.credit > 0
            if self.expect("withdraw", ok, lambda: refuser.call(s.incentives.contract.functions.withdraw())):
                self.delta[refuser.address] += self.credit
                self.credit = 0

        def teardown(self) -> None:
            """Finish every task: score what was submitted, close every auction, expire what is assigned."""
            for task in self.tasks.values():
                if task.status == TaskStatus.SUBMITTED:
                    s.tasks.complete_task(s.evaluator, task.id, 60)
                    self.settle(task, 60)
            closes = max((t.deadline for t in self.tasks.values() if t.status == TaskStatus.OPEN), default=0)
            if closes + limits.REVEAL_WINDOW >= now(s):  # past every deadline and reveal window
                advance_time(w3, closes + limits.REVEAL_WINDOW + 1 - now(s))
            for task in self.tasks.values():
                if task.status == TaskStatus.OPEN:
                    self.finalize(task, s.agent(0), [])
            if any(task.status == TaskStatus.ASSIGNED for task in self.tasks.values()):
                advance_time(w3, DURATION + 1)  # past every execution deadline
            for task in self.tasks.values():
                if task.status == TaskStatus.ASSIGNED:
                    self.expire(task)
            self.withdraw()
            assert all(task.status in FINAL_STATUSES for task in self.tasks.values())
            self.settled.clear()
            self.mined()
            self.check()
            assert balance(s.tasks.address) == balance(s.incentives.address) == 0

        # --- invariants --------------------------------------------------------------------------------
        def mined(self) -> bool:
            """Charge the gas of the transactions mined since the last look to their senders; False when
            there were none (nothing on chain can have changed, so the invariants need no new reads)."""
            any_tx = False
            for number in range(self.block + 1, w3.eth.block_number + 1):
                for tx_hash in w3.eth.get_block(number)["transactions"]:
                    receipt = w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
                    sender = Web3.to_checksum_address(receipt["from"])
                    self.gas[sender] += int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])
                    any_tx = True
                self.block = number
            return any_tx

        @invariant()
        def market_matches_the_model(self) -> None:
            if self.mined():
                self.check()

        def check(self) -> None:
            """Statuses and reputations are the model's; the escrow is conserved."""
            for task in self.tasks.values():
                if task.id not in self.settled:
                    assert s.tasks.status_of(task.id) == task.status, task
                    if task.status in FINAL_STATUSES:
                        self.settled.add(task.id)  # nothing moves a task out of a final status
            for agent in range(AGENTS):
                reputation = s.registry.reputation_of(agents[agent].address)
                assert reputation == self.reputation[agent] and 0 <= reputation <= 100
            balances = {address: balance(address) for address in holders}
            live = sum(t.reward for t in self.tasks.values() if t.status in LIVE)
            assert balances[s.tasks.address] == live  # the TaskManager holds the rewards of live tasks
            assert balances[s.incentives.address] == s.incentives.total_credits() == self.credit
            assert s.incentives.credit_of(refuser.address) == self.credit
            assert balances[s.auction.address] == 0
            for address in [a.address for a in eoas] + [refuser.address]:  # paid what the model paid
                assert balances[address] == self.start[address] + self.delta[address] - self.gas[address], address
            # no wei created, none stuck: every holder together lost exactly the gas
            assert sum(balances.values()) == self.total - sum(self.gas.values())

    run_state_machine_as_test(
        Market,
        settings=settings(
            max_examples=5 if is_inprocess(w3) else 10,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        ),
    )
    # The sequences reached every kind of state change, so the invariants were checked after each.
    print(succeeded)
    expected = {"bid", "sign", "finalize", "finalize_sealed", "submit", "complete", "cancel", "expire", "withdraw"}
    assert expected <= set(succeeded), succeeded
