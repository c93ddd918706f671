"""Worker processes as people run them: `celery -A workers worker`, `celery -A workers call`, SIGKILL."""

from __future__ import annotations

import signal
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from pytest_httpserver import HTTPServer

from agentfleet.bidding.closing import close_auction
from agentfleet.bidding.sealed import BidBook
from agentfleet.chain.local import chain_now
from agentfleet.chain.session import ChainSession
from agentfleet.protocol import keys, routing
from agentfleet.protocol.app import app
from agentfleet.protocol.status import AuctionMode, TaskStatus
from shell.services import RedisServer, free_port
from testkit.chain import bids_on, create_task
from testkit.processes import RESEARCH, SlowLLM, celery_call, process_market, stop, worker
from testkit.wait import wait_until

pytestmark = pytest.mark.anvil


@pytest.fixture
def market(tmp_path: Path, redis_server: RedisServer) -> Iterator[tuple[ChainSession, dict[str, str], redis.Redis]]:
    settings = {"confirmations": 0, "visibility_timeout": 10, "unacked_restore_interval": 1}
    with process_market(tmp_path, redis_server.url, **settings) as (session, env, client):
        app.conf.broker_url = redis_server.url
        app.conf.result_backend = redis_server.url
        yield session, env, client


def test_celery_call_places_a_bid_and_a_malformed_call_fails_clearly(
    market: tuple[ChainSession, dict[str, str], redis.Redis],
) -> None:
    s, env, _ = market
    task_id = create_task(s, tags=["research"])
    proc = worker(env, "w1")
    try:
        good = celery_call(env, {"agent": s.agent(0).address, "task_id": task_id})
        bad = celery_call(env, {"agent": "not-an-address", "task_id": 0})
        outcome = app.AsyncResult(good).get(timeout=60)
        assert outcome["status"] == "bid"
        amount, live = s.auction.bid_of(task_id, s.agent(0).address)
        assert live and amount == outcome["amount"]
        with pytest.raises(ValueError, match=r"invalid arguments: .*agent.*not an Ethereum address.*task_id"):
            app.AsyncResult(bad).get(timeout=60)
    finally:
        stop(proc)


def test_three_workers_for_one_agent_bid_once_without_nonce_errors(
    market: tuple[ChainSession, dict[str, str], redis.Redis],
) -> None:
    s, env, client = market
    task_ids = [create_task(s, tags=["research"], mode=AuctionMode(i % 2)) for i in range(4)]  # open and sealed
    port = free_port()  # w0 serves metrics on it; w1 is given the same (taken) port and must work regardless
    procs = [worker(env, "w0", metrics_port=port)]
    wait_until(lambda: _serves(port), 60, f"w0 does not serve metrics on port {port}", interval=0.1)
    procs += [worker(env, "w1", metrics_port=port), worker(env, "w2")]
    try:
        ids = [
            app.send_task(routing.CONSIDER, kwargs={"agent": s.agent(0).address, "task_id": t}, queue=RESEARCH).id
            for t in task_ids
            for _ in range(3)  # every message three times: duplicates race each other
        ]
        results = [app.AsyncResult(i).get(timeout=120) for i in ids]
        assert all(proc.poll() is None for proc in procs)  # a metrics port conflict costs metrics, not the worker
        assert (
            "agentfleet_worker_tasks_total"
            in urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        )
    finally:
        stop(*procs)
    assert all(r["status"] == "bid" for r in results)
    for task_id in task_ids:
        assert len(bids_on(s, task_id, client)) == 1
    assert client.xlen(keys.FAILURES) == 0


def _serves(port: int) -> bool:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).status == 200
    except OSError:
        return False


@pytest.mark.slow
def test_worker_killed_during_consider_and_execute_bids_and_submits_once(
    market: tuple[ChainSession, dict[str, str], redis.Redis], httpserver: HTTPServer
) -> None:
    s, env, client = market
    llm = SlowLLM(first_delay=4.0)
    httpserver.expect_request("/v1/chat/completions").respond_with_handler(llm)
    env = {
        **env,
        "OPENAI_API_KEY": "sk-test-local",
        "OPENAI_BASE_URL": httpserver.url_for("/v1"),
        "AGENTFLEET_ACTION_LOGGING": "false",
    }
    task_id = create_task(s, tags=["research"], window=120, mode=AuctionMode.SEALED)

    first = worker(env, "victim")
    result = app.send_task(routing.CONSIDER, kwargs={"agent": s.agent(0).address, "task_id": task_id}, queue=RESEARCH)
    wait_until(lambda: llm.calls >= 1, 60, "the worker did not call the LLM", interval=0.1)  # inside the call now
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    second = worker(env, "heir")
    try:
        outcome = result.get(timeout=90)  # redelivered after the visibility timeout
        assert outcome["status"] == "bid" and outcome["mode"] == "sealed"
        assert list(bids_on(s, task_id, client)) == [s.agent(0).address.lower()]  # one signed bid, no tx

        # Now execute: make agent 0 the winner (the requester submits the bid book), kill during execution.
        from agentfleet.chain.local import advance_time

        advance_time(s.client.w3, 121)
        closing = close_auction(s, BidBook(client), task_id, caller=s.requester, now=chain_now(s.client.w3))
        assert (closing.status, closing.bids) == ("finalized", 1)
        llm.calls, llm.first_delay = 0, 4.0
        stop(second)
        third = worker(env, "victim2")
        run = app.send_task(routing.EXECUTE, kwargs={"agent": s.agent(0).address, "task_id": task_id}, queue=RESEARCH)
        wait_until(lambda: llm.calls >= 1, 60, "the worker did not call the LLM", interval=0.1)
        third.send_signal(signal.SIGKILL)
        third.wait(timeout=10)
        fourth = worker(env, "heir2")
        try:
            assert run.get(timeout=90)["status"] == "submitted"
        finally:
            stop(fourth)
        logs = s.tasks.contract.events.ResultSubmitted().get_logs(from_block=0)
        assert len(logs) == 1 and s.tasks.status_of(task_id) == TaskStatus.SUBMITTED
    finally:
        stop(second)
