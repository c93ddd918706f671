"""Hypothesis stateful test: random create/bid/finalize/submit/complete/cancel/expire/withdraw sequences
keep escrow conserved (no wei created or stuck) and reputation within 0..100, on both chains."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
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

from agentfleet.chain.connect import is_inprocess
from agentfleet.chain.errors import ContractRevert
from agentfleet.chain.local import advance_time
from agentfleet.chain.nonces import LocalNonceAllocator
from agentfleet.chain.session import ChainSession
from agentfleet.protocol.status import TaskStatus
from testkit.chain import ETH, deployed_market, now

AGENTS = 3
LIVE = {TaskStatus.OPEN, TaskStatus.ASSIGNED, TaskStatus.SUBMITTED}  # the reward is still in escrow


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


def test_escrow_is_conserved_and_reputation_bounded(market: ChainSession) -> None:
    s = market
    w3 = s.client.w3
    take, revert = snapshotter(s)
    participants = [s.requester, *(s.agent(i) for i in range(AGENTS))]
    state: dict[str, Any] = {"snapshot": take()}
    succeeded: dict[str, int] = {}

    class Market(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            revert(state["snapshot"])
            state["snapshot"] = take()  # anvil consumes a snapshot on revert
            s.client.nonces = LocalNonceAllocator()  # the chain went back: forget counted nonces
            self.tasks: list[int] = []
            self.deposited = 0
            self.withdrawn = 0

        def attempt(self, name: str, action: Callable[[], Any]) -> None:
            """Run a transaction; a named contract error is a legal outcome, anything else is a bug."""
            try:
                action()
            except ContractRevert:
                return
            succeeded[name] = succeeded.get(name, 0) + 1

        def pick(self, data: st.DataObject, status: TaskStatus) -> int:
            """Mostly a task in ``status`` (so sequences go deep), sometimes any task (so rules get broken)."""
            matching = [t for t in self.tasks if s.tasks.status_of(t) == status]
            if matching and data.draw(st.integers(0, 3)) < 3:
                return data.draw(st.sampled_from(matching))
            return data.draw(st.sampled_from(self.tasks))

        @initialize(rewards=st.lists(st.integers(1, 5), min_size=3, max_size=3))
        def open_market(self, rewards: list[int]) -> None:
            """Start every sequence with tasks at several stages (submitted, assigned, open with bids), so
            even short random sequences reach settlement, expiry and withdrawal."""
            for reward in rewards:
                self.create(reward, 60)
                for agent in range(AGENTS):
                    amount = reward * ETH * (50 + 10 * agent) // 100
                    self.attempt("bid", lambda a=agent, v=amount: s.auction.place_bid(s.agent(a), self.tasks[-1], v))
            advance_time(w3, 61)
            for task_id in self.tasks[:2]:
                self.attempt("finalize", lambda t=task_id: s.auction.finalize(s.requester, t))
            first = s.tasks.get_task(self.tasks[0])
            winner = next(p for p in participants if p.address == first.assignee)
            self.attempt("submit", lambda: s.tasks.submit_result(winner, self.tasks[0], b"\x09" * 32, "r"))
            self.create(rewards[0], 300)

        @rule(reward=st.integers(1, 5), window=st.sampled_from([60, 300]))
        def create(self, reward: int, window: int) -> None:
            s.tasks.create_task(
                s.requester, "t", ["research"], now(s) + window, 1800, s.evaluator.address, value=reward * ETH
            )
            self.tasks.append(s.tasks.task_count())
            self.deposited += reward * ETH

        @precondition(lambda self: self.tasks)
        @rule(data=st.data(), agent=st.integers(0, AGENTS - 1))
        def withdraw_bid(self, data: st.DataObject, agent: int) -> None:
            if data.draw(st.integers(0, 2)) < 2:
                return  # rare, like cancel
            task_id = data.draw(st.sampled_from(self.tasks))
            self.attempt("withdraw_bid", lambda: s.auction.withdraw_bid(s.agent(agent), task_id))

        @precondition(lambda self: self.tasks)
        @rule(
            data=st.data(),
            score=st.integers(0, 100),
            agent=st.integers(0, AGENTS - 1),
            fraction=st.integers(0, 120).map(lambda f: 50 if f == 0 else f),
            dishonest=st.integers(0, 4),
        )
        def advance_task(self, data: st.DataObject, score: int, agent: int, fraction: int, dishonest: int) -> None:
            """The next step of a task's life, usually by the right party (so sequences go deep),
            sometimes by a wrong one or with a wrong amount (so the rules get broken too)."""
            task_id = data.draw(st.sampled_from(self.tasks))
            task = s.tasks.get_task(task_id)
            stranger = participants[data.draw(st.integers(0, AGENTS))]
            honest = dishonest < 4  # hypothesis shrinks toward 0: the simple case is the honest one
            if task.status == TaskStatus.OPEN and now(s) < task.biddingDeadline:
                amount = task.reward * fraction // 100
                bidder = s.agent(agent) if honest else s.requester
                self.attempt("bid", lambda: s.auction.place_bid(bidder, task_id, amount))
            elif task.status == TaskStatus.OPEN:
                self.attempt("finalize", lambda: s.auction.finalize(stranger, task_id))
            elif task.status == TaskStatus.ASSIGNED:
                assignee = next(p for p in participants if p.address == task.assignee)
                sender = assignee if honest else stranger
                self.attempt("submit", lambda: s.tasks.submit_result(sender, task_id, b"\x08" * 32, "r"))
            elif task.status == TaskStatus.SUBMITTED:
                scorer = s.evaluator if honest else stranger
                self.attempt("complete", lambda: s.tasks.complete_task(scorer, task_id, score))

        @rule(seconds=st.sampled_from([30, 120, 400, 2000]))
        def wait(self, seconds: int) -> None:
            advance_time(w3, seconds)

        @precondition(lambda self: self.tasks)
        @rule(data=st.data())
        def cancel(self, data: st.DataObject) -> None:
            if data.draw(st.integers(0, 2)) < 2:
                return  # requesters rarely cancel: keep most tasks alive to go deeper
            task_id = self.pick(data, TaskStatus.OPEN)
            self.attempt("cancel", lambda: s.tasks.cancel_task(s.requester, task_id))

        @precondition(lambda self: self.tasks)
        @rule(data=st.data())
        def expire(self, data: st.DataObject) -> None:
            if data.draw(st.integers(0, 2)) < 2:
                return  # rare, like cancel
            task_id = self.pick(data, TaskStatus.ASSIGNED)
            self.attempt("expire", lambda: s.tasks.expire_task(s.agent(1), task_id))

        @rule(who=st.integers(0, AGENTS))
        def withdraw(self, who: int) -> None:
            account = participants[who]
            credit = s.incentives.credit_of(account.address)
            if credit:
                s.incentives.withdraw(account)
                self.withdrawn += credit

        @invariant()
        def escrow_is_conserved(self) -> None:
            escrowed = s.tasks.total_escrowed()
            credits = s.incentives.total_credits()
            assert w3.eth.get_balance(s.tasks.address) == escrowed
            assert w3.eth.get_balance(s.incentives.address) == credits
            assert escrowed == sum(s.tasks.reward_of(t) for t in self.tasks if s.tasks.status_of(t) in LIVE)
            assert credits == sum(s.incentives.credit_of(p.address) for p in participants)
            assert self.deposited == escrowed + credits + self.withdrawn  # no wei created, none stuck

        @invariant()
        def reputation_is_bounded(self) -> None:
            for i in range(AGENTS):
                assert 0 <= s.registry.reputation_of(s.agent(i).address) <= 100

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
    assert {"bid", "finalize", "submit", "complete"} <= set(succeeded), succeeded
