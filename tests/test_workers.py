"""The fleet itself: real Celery worker, real anvil, real redis-server, listener in between."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from celery.contrib.testing.worker import start_worker

from agentfleet.chain.local import advance_time, fund
from agentfleet.chain.session import ChainSession
from agentfleet.directory import AgentDirectory
from agentfleet.fleet import register_fleet
from agentfleet.profiles import AGENT_TYPES
from agentfleet.services import RedisServer
from agentfleet.settings import Settings
from chain_listener.listener import Listener
from tests.chain_helpers import ETH, deployed_market, now
from workers.app import app
from workers.runtime import Runtime, use_runtime

pytestmark = pytest.mark.anvil
QUEUES = ["agent.research", "agent.development", "agent.analytics", "agent.creative", "agent.blockchain",
          "evaluation", "keeper"]  # fmt: skip


def wait_until(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def fleet(tmp_path: Path, redis_server: RedisServer) -> Iterator[tuple[ChainSession, Listener, redis.Redis]]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    with deployed_market("anvil", tmp_path, register=0) as session:
        settings = Settings(
            rpc_urls=[session.client.w3.provider.endpoint_uri],  # type: ignore[attr-defined]
            redis_url=redis_server.url,
            confirmations=0,
            contract_addresses_path=session.settings.contract_addresses_path,
            action_logging=True,
        )
        for number in range(len(AGENT_TYPES)):
            fund(session.client.w3, session.agent(number).address, 100 * ETH)
        register_fleet(session, AgentDirectory(client), AGENT_TYPES)
        use_runtime(Runtime.build(settings))
        app.conf.broker_url = redis_server.url
        app.conf.result_backend = redis_server.url
        listener = Listener.build(settings, app=app, redis_client=client)
        with start_worker(
            app, pool="solo", concurrency=1, queues=QUEUES, perform_ping_check=False, shutdown_timeout=10
        ):
            yield session, listener, client
        use_runtime(None)


def pump(listener: Listener, until: Callable[[], bool], timeout: float = 90.0) -> None:
    """Run the listener (in this thread) while the worker works, until ``until()`` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listener.step()
        if until():
            return
        time.sleep(0.05)
    raise AssertionError("the fleet did not get there in time")


def test_five_agents_ten_tasks_whole_lives(fleet: tuple[ChainSession, Listener, redis.Redis]) -> None:
    s, listener, client = fleet
    tags = [["research"], ["coding"], ["data_analysis"], ["storytelling"], ["smart_contracts"],
            ["writing", "research"], ["testing"], ["statistics"], ["content_creation"], ["tokenomics"]]  # fmt: skip
    deadline = now(s) + 40
    for i, task_tags in enumerate(tags):
        s.tasks.create_task(s.requester, f"Task {i}: deliver {' and '.join(task_tags)}", task_tags, deadline,
                            3600, s.evaluator.address, value=ETH)  # fmt: skip
    ids = list(range(1, 11))
    pump(listener, lambda: all(s.auction.bid_count(t) >= 1 for t in ids))
    advance_time(s.client.w3, 41)
    app.send_task("workers.tasks.finalize_due", queue="keeper")
    pump(listener, lambda: all(s.tasks.status_of(t) == 4 for t in ids), timeout=120)

    for task_id, task_tags in zip(ids, tags, strict=True):
        task = s.tasks.get_task(task_id)
        assert task.status == 4 and task.score >= 50  # completed and passed
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
    assert client.xlen("agentfleet:failures") == 0
    winners = {s.tasks.get_task(t).assignee for t in ids}
    assert winners == {s.agent(i).address for i in range(5)}  # each of the five types won its specialty
