"""The fleet itself: real Celery worker, real anvil, real redis-server, listener in between."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from agentfleet.chain.local import advance_time
from agentfleet.chain.session import ChainSession
from agentfleet.profiles import AGENT_TYPES
from agentfleet.protocol import keys, routing
from agentfleet.protocol.app import app
from agentfleet.protocol.status import TaskStatus
from chain_listener.listener import Listener
from shell.services import RedisServer
from testkit.chain import ETH, now
from testkit.fleet import pump, running_fleet

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
    deadline = now(s) + 40
    for i, task_tags in enumerate(tags):
        s.tasks.create_task(
            s.requester,
            f"Task {i}: deliver {' and '.join(task_tags)}",
            task_tags,
            deadline,
            3600,
            s.evaluator.address,
            value=ETH,
        )
    ids = list(range(1, 11))
    pump(listener, lambda: all(s.auction.bid_count(t) >= 1 for t in ids))
    advance_time(s.client.w3, 41)
    app.send_task(routing.FINALIZE_DUE, queue=routing.KEEPER)
    pump(listener, lambda: all(s.tasks.status_of(t) == TaskStatus.COMPLETED for t in ids), timeout=120)

    for task_id, task_tags in zip(ids, tags, strict=True):
        task = s.tasks.get_task(task_id)
        assert task.status == TaskStatus.COMPLETED and task.score >= 50  # completed and passed
        winner = next(i for i, a in enumerate(AGENT_TYPES) if s.agent(i).address == task.assignee)
        assert set(task_tags) & set(AGENT_TYPES[winner].capabilities)  # the right specialist won
        assert ETH * 5 // 100 <= task.price <= ETH  # inside policy bounds
    for number in range(len(AGENT_TYPES)):
        address = s.agent(number).address
        won = [t for t in ids if s.tasks.get_task(t).assignee == address]
        paid = sum(s.tasks.get_task(t).price for t in won)
        assert s.incentives.credit_of(address) == paid
        assert (s.registry.reputation_of(address) > 50) == bool(won)
    assert s.actions.total_actions() >= 20  # a bid and a submission logged per task at least
    assert client.xlen(keys.FAILURES) == 0
    winners = {s.tasks.get_task(t).assignee for t in ids}
    assert winners == {s.agent(i).address for i in range(5)}  # each of the five types won its specialty
