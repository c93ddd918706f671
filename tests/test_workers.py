"""The fleet itself: real Celery worker, real anvil, real redis-server, listener in between."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from agentfleet.chain.local import advance_time
from agentfleet.chain.market import TaskSpec, post_task
from agentfleet.chain.session import ChainSession
from agentfleet.profiles import AGENT_TYPES
from agentfleet.protocol import keys, routing
from agentfleet.protocol.app import app
from agentfleet.protocol.status import AuctionMode, TaskStatus
from agentfleet.runtime import runtime
from chain_listener.listener import Listener
from shell.services import RedisServer
from testkit.chain import ETH, bids_on, create_task, now
from testkit.fleet import pump, running_fleet
from workers import tasks

pytestmark = pytest.mark.anvil


@pytest.fixture
def fleet(tmp_path: Path, redis_server: RedisServer) -> Iterator[tuple[ChainSession, Listener, redis.Redis]]:
    with running_fleet(tmp_path, redis_server, action_logging=True) as parts:  # off by default: checked here
        yield parts


def test_five_agents_ten_tasks_whole_lives(fleet: tuple[ChainSession, Listener, redis.Redis]) -> None:
    s, listener, client = fleet
    tags = [
        ["research"],
        ["coding"],
        ["data_analysis"],
        ["storytelling"],
        ["smart_contracts"],
        ["writing", "research"],
        ["testing"],
        ["statistics"],
        ["content_creation"],
        ["tokenomics"],
    ]
    ids = [  # both auction modes, alternating
        create_task(
            s,
            tags=task_tags,
            window=40,
            mode=AuctionMode.OPEN if i % 2 == 0 else AuctionMode.SEALED,
            text=f"Task {i}: deliver {' and '.join(task_tags)}",
        )
        for i, task_tags in enumerate(tags)
    ]
    pump(listener, lambda: all(bids_on(s, t, client) for t in ids))
    advance_time(s.client.w3, 41)
    app.send_task(routing.FINALIZE_DUE, queue=routing.KEEPER)
    pump(listener, lambda: all(s.tasks.status_of(t) == TaskStatus.COMPLETED for t in ids), timeout=120)

    for task_id, task_tags in zip(ids, tags, strict=True):
        task = s.tasks.get_task(task_id)
        assert task.status == TaskStatus.COMPLETED and task.score >= 50  # completed and passed
        winner = next(i for i, a in enumerate(AGENT_TYPES) if s.agent(i).address == task.assignee)
        assert set(task_tags) & set(AGENT_TYPES[winner].capabilities)  # the right specialist won
        assert ETH * 5 // 100 <= task.price <= ETH  # inside policy bounds
    completed = s.tasks.contract.events.TaskCompleted().get_logs(from_block=0)
    assert {e["args"]["taskId"]: e["args"]["payment"] for e in completed} == {
        t: s.tasks.get_task(t).price for t in ids
    }  # each winner was paid its price, pushed at settlement
    for number in range(len(AGENT_TYPES)):
        address = s.agent(number).address
        won = [t for t in ids if s.tasks.get_task(t).assignee == address]
        assert s.incentives.credit_of(address) == 0  # nothing left to withdraw
        assert (s.registry.reputation_of(address) > 50) == bool(won)
    assert s.actions.total_actions() >= 15  # a submission per task, a bid per open task, logged
    assert client.xlen(keys.FAILURES) == 0
    winners = {s.tasks.get_task(t).assignee for t in ids}
    assert winners == {s.agent(i).address for i in range(5)}  # each of the five types won its specialty


def test_task_text_comes_from_the_store_or_the_chain_and_a_missing_one_is_refused(
    fleet: tuple[ChainSession, Listener, redis.Redis],
) -> None:
    s, listener, client = fleet
    elsewhere = TaskSpec(
        "Only at a URI",
        ("research",),
        ETH,
        now(s) + 300,
        3600,
        s.evaluator.address,
        content_uri="ipfs://x",
        publish_text=False,
    )
    hidden = post_task(s, s.requester, elsewhere)
    published = create_task(s, tags=["research"], text="Summarise the literature on sealed-bid auctions")
    considered = lambda t: client.keys(f"{keys.WORK}:done:consider:{t}:*")  # noqa: E731
    pump(listener, lambda: bool(considered(hidden)) and bool(bids_on(s, published)))
    for key in considered(hidden):  # every agent that looked refused it, with the reason, and nobody bid
        done = json.loads(client.get(key))
        assert done["status"] == "refused" and "text unavailable" in done["reason"], done
    assert not bids_on(s, hidden)

    rt = runtime()
    for key in client.keys(f"{keys.ROOT}:task*"):  # the content store lost every text (a flushed Redis)
        client.delete(key)
    assert rt.texts.of_task(published) is None
    assert tasks._text(rt, published) == "Summarise the literature on sealed-bid auctions"  # from the event log
    assert rt.texts.of_task(published) is not None  # and stored again
    assert tasks._text(rt, hidden) is None
