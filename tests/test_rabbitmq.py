"""RabbitMQ as the Celery broker (Redis stays the result backend and state store): the configuration, a retry
with a countdown on quorum queues, a task's whole life, and a worker killed with -9 inside an LLM call.

Every test runs against a private RabbitMQ node (``shell.services.RabbitMQServer``: Debian's rabbitmq-server on
free ports, its own epmd, no plugins), never the machine's own."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from kombu.transport.native_delayed_delivery import calculate_routing_key
from pytest_httpserver import HTTPServer

from agentfleet.chain.local import advance_time
from agentfleet.chain.session import ChainSession
from agentfleet.profiles import AGENT_TYPES
from agentfleet.protocol import keys, routing
from agentfleet.protocol.app import app, delivered_from
from agentfleet.protocol.celeryconfig import QUORUM, TASK_EXCHANGE, broker_settings, is_amqp, queue_names
from agentfleet.protocol.status import AuctionMode, TaskStatus
from agentfleet.retry import RETRY, TryLater
from agentfleet.settings import Settings
from shell.services import RabbitMQServer, RedisServer, rabbitmq_script
from testkit.broker import queue_depth, use_broker
from testkit.chain import ETH, bids_on, create_task
from testkit.fleet import QUEUES, pump, running_fleet
from testkit.processes import RESEARCH, ROOT, SlowLLM, process_market, stop, worker
from testkit.wait import wait_until

pytestmark = pytest.mark.skipif(
    rabbitmq_script() is None,
    reason="rabbitmq-server is not installed (scripts/setup.sh installs Debian's package with apt-get)",
)
FLAKY = "tests.rabbitmq.flaky"  # a task of this module only: fruitless once, then done


@pytest.fixture(scope="module")
def rabbitmq() -> Iterator[RabbitMQServer]:
    """One private RabbitMQ node for the module (about 4 s to boot)."""
    server = RabbitMQServer.start()
    yield server
    gc.collect()  # Celery results and pools let go of their connections while the node still runs
    server.stop()


def fleet_queues(server: RabbitMQServer) -> dict[str, dict[str, Any]]:
    """The node's queues, by name: type, messages ready and unacknowledged."""
    rows = json.loads(
        server.ctl("list_queues", "name", "type", "messages_ready", "messages_unacknowledged", "--formatter", "json")
    )
    return {row["name"]: row for row in rows}


def test_a_private_node_serves_amqp_on_its_own_ports_and_leaves_nothing_behind() -> None:
    server = RabbitMQServer.start()
    try:
        assert server.port not in (5672, 25672) and server.env["ERL_EPMD_PORT"] != "4369"  # not the machine's
        assert server.nodename == f"agentfleet-{server.port}@localhost"
        assert server.ctl("eval", "rabbit_plugins:active().").strip() == "[]"  # no plugin at all (no management)
        pgid, workdir = os.getpgid(server.proc.pid), server.workdir
    finally:
        server.stop()
    assert workdir is not None and not workdir.exists()
    group = subprocess.run(["ps", "-o", "pid=,stat=", "-g", str(pgid)], capture_output=True, text=True).stdout
    assert all("Z" in line.split()[1] for line in group.splitlines()), group  # epmd, beam.smp: gone (or reaped soon)


# --- (d) the configuration ----------------------------------------------------------------------------------
def test_amqp_url_gets_quorum_queues_confirms_and_a_topic_exchange_and_redis_keeps_its_options() -> None:
    settings = Settings(trainer_shards=3, visibility_timeout=45, unacked_restore_interval=5)
    amqp = broker_settings("amqp://fleet:s3cret@rabbit:5672/fleet", settings)
    assert amqp["broker_url"] == "amqp://fleet:s3cret@rabbit:5672/fleet"
    assert amqp["broker_transport_options"] == {"confirm_publish": True}  # and nothing of Redis's
    names = [q.name for q in amqp["task_queues"]]
    assert names == list(queue_names(settings))
    assert {*routing.ALL_QUEUES, "training.0", "training.1", "training.2"} == set(names)
    for queue in amqp["task_queues"]:
        assert queue.queue_arguments == QUORUM == {"x-queue-type": "quorum"}
        assert queue.durable and not queue.auto_delete and not queue.exclusive  # what quorum queues require
        assert (queue.exchange.name, queue.exchange.type, queue.routing_key) == (TASK_EXCHANGE, "topic", queue.name)
    assert amqp["task_create_missing_queue_type"] == "quorum"
    # Native delayed delivery binds each queue as "#.<its routing key>": a key that ended another one at a dot
    # would receive that queue's delayed retries too.
    assert not [(a, b) for a in names for b in names if a != b and b.endswith(f".{a}")]

    redis_options = broker_settings("redis://:pw@127.0.0.1:6379/0", settings)
    assert redis_options["broker_transport_options"] == {
        "visibility_timeout": 45,
        "unacked_restore_interval": 5,
        "unacked_restore_throttle": 1,
        "unacked_mutex_expire": 10,
        "polling_interval": 0.1,
    }
    for queue in redis_options["task_queues"]:
        assert not queue.queue_arguments and queue.routing_key == queue.name
    assert (redis_options["task_default_exchange_type"], redis_options["task_create_missing_queue_type"]) == (
        "direct",
        "classic",
    )
    assert set(amqp) == set(redis_options)  # the same names either way: an app can switch and switch back
    assert [is_amqp(u) for u in ("amqp://h//", "AMQPS://h", "pyamqp://h", "redis://h", "rediss://h")] == [
        True,
        True,
        True,
        False,
        False,
    ]


def test_the_environment_picks_the_broker_and_results_stay_in_redis() -> None:
    """What a worker process reads: AGENTFLEET_BROKER_URL for the broker, AGENTFLEET_REDIS_URL for results."""
    probe = (
        "import json; from agentfleet.protocol import celeryconfig as c; print(json.dumps([c.broker_url,"
        " c.result_backend, c.broker_transport_options, [q.queue_arguments for q in c.task_queues],"
        " c.worker_detect_quorum_queues]))"
    )

    def config(**env: str) -> list[Any]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("AGENTFLEET_")}
        out = subprocess.run(
            [sys.executable, "-c", probe], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)  # type: ignore[no-any-return]

    redis_url = "redis://:pw@10.0.0.1:6379/0"
    amqp = config(AGENTFLEET_REDIS_URL=redis_url, AGENTFLEET_BROKER_URL="amqp://u:p@10.0.0.2:5672//")
    assert amqp[:3] == ["amqp://u:p@10.0.0.2:5672//", redis_url, {"confirm_publish": True}]
    assert all(arguments == QUORUM for arguments in amqp[3]) and amqp[4] is True
    for default in (
        config(AGENTFLEET_REDIS_URL=redis_url),
        config(AGENTFLEET_REDIS_URL=redis_url, AGENTFLEET_BROKER_URL=""),
    ):
        assert default[:2] == [redis_url, redis_url] and "visibility_timeout" in default[2]  # empty as unset
        assert all(not arguments for arguments in default[3])


def test_a_retried_message_goes_back_to_the_queue_it_came_from() -> None:
    """A delayed message's routing key carries the countdown in binary before the queue's own key."""

    class Request:
        def __init__(self, key: str | None) -> None:
            self.delivery_info = {"exchange": TASK_EXCHANGE, "routing_key": key}

    with use_broker(app, "amqp://guest:guest@127.0.0.1:1//"):  # no connection is made
        assert delivered_from(app, Request(RESEARCH)) == RESEARCH
        assert delivered_from(app, Request(calculate_routing_key(37, RESEARCH))) == RESEARCH
        assert delivered_from(app, Request("agent.nobody")) is None and delivered_from(app, Request(None)) is None


# --- (c) a retry with a countdown on quorum queues ------------------------------------------------------------
@pytest.fixture
def flaky() -> Iterator[dict[str, list[tuple[float, str]]]]:
    """A task with the fleet's retry policy (without jitter: the first countdown is 2 s) that is fruitless
    (TryLater) on its first run, or retries itself once with an explicit ``countdown``; the runs by key."""
    runs: dict[str, list[tuple[float, str]]] = {}

    @app.task(name=FLAKY, bind=True, **{**RETRY, "retry_jitter": False})
    def flaky_task(self: Any, key: str, countdown: float | None = None) -> dict[str, Any]:
        runs.setdefault(key, []).append((time.monotonic(), str(self.request.delivery_info.get("routing_key"))))
        if len(runs[key]) == 1:
            if countdown is None:
                raise TryLater("the first answer did not validate")  # autoretry: countdown 2 s
            raise self.retry(countdown=countdown, exc=TryLater("explicit countdown"))
        return {"attempts": len(runs[key])}

    yield runs
    app.tasks.unregister(FLAKY)


def test_retry_with_countdown_waits_on_the_broker_and_comes_back_to_its_queue(
    rabbitmq: RabbitMQServer, redis_server: RedisServer, flaky: dict[str, list[tuple[float, str]]]
) -> None:
    with use_broker(app, rabbitmq.url):
        app.conf.result_backend = redis_server.url
        # Only the research queue is consumed: a retry routed anywhere else (the default queue, keeper) never runs.
        # With heartbeats, as `celery worker` runs by default: on amqp, an ack the event loop schedules while it
        # runs its ready callbacks goes out only at its next timer (kombu#1587), 10 s later without them.
        worker = start_worker(
            app, pool="solo", queues=[RESEARCH], perform_ping_check=False, shutdown_timeout=30, without_heartbeat=False
        )
        with worker:
            autoretried = app.send_task(FLAKY, kwargs={"key": "auto"}, queue=RESEARCH)
            explicit = app.send_task(FLAKY, kwargs={"key": "explicit", "countdown": 0.3}, queue=RESEARCH)
            assert autoretried.get(timeout=60) == {"attempts": 2}
            assert explicit.get(timeout=60) == {"attempts": 2}  # a countdown under 1 s is rounded up, not refused

            # The last ack leaves at the event loop's next timer: wait for it while the worker runs (a worker stopped
            # before that hands its message back to the queue, to run again: at least once, never lost).
            # Queue counts are sampled (every 0.5 s on this node): settled means empty in readings over 1.5 s.
            since: list[float] = []

            def settled() -> bool:
                row = fleet_queues(rabbitmq)[RESEARCH]
                if row["messages_ready"] or row["messages_unacknowledged"]:
                    since.clear()
                    return False
                since.append(time.monotonic())
                return since[-1] - since[0] >= 1.5

            wait_until(
                settled, 30, lambda: f"research queue still holds {fleet_queues(rabbitmq)[RESEARCH]}", interval=0.5
            )
        queues = fleet_queues(rabbitmq)
    (first, first_key), (second, second_key) = flaky["auto"]
    assert second - first >= 1.9  # the countdown was honoured (2 s)...
    assert first_key == RESEARCH and second_key == calculate_routing_key(2, RESEARCH)  # ...by the broker's delay
    assert flaky["explicit"][1][1] == calculate_routing_key(1, RESEARCH)
    assert queues[RESEARCH]["type"] == "quorum" and queues["celery_delayed_1"]["type"] == "quorum"
    assert queues[RESEARCH]["messages_ready"] == 0 and queues[RESEARCH]["messages_unacknowledged"] == 0
    assert queues[routing.KEEPER]["messages_ready"] == 0  # declared by the delayed-delivery set-up; no retry went there


# --- (a) a task's whole life --------------------------------------------------------------------------------
@pytest.mark.anvil
def test_tasks_live_their_whole_lives_on_rabbitmq(
    tmp_path: Path, redis_server: RedisServer, rabbitmq: RabbitMQServer
) -> None:
    tags = [["research"], ["coding"]]
    with running_fleet(tmp_path, redis_server, broker_url=rabbitmq.url) as (s, listener, client):
        ids = [
            create_task(s, tags=t, window=40, mode=mode, text=f"Deliver {t[0]}")
            for t, mode in zip(tags, (AuctionMode.OPEN, AuctionMode.SEALED), strict=True)
        ]
        pump(listener, lambda: all(bids_on(s, t, client) for t in ids))  # listener -> consider -> bid
        advance_time(s.client.w3, 41)
        app.send_task(routing.FINALIZE_DUE, queue=routing.KEEPER)  # finalize -> execute -> evaluate -> complete
        pump(listener, lambda: all(s.tasks.status_of(t) == TaskStatus.COMPLETED for t in ids), timeout=120)
        depths = {queue: queue_depth(app, queue) for queue in QUEUES}
        _check_completed(s, client, ids, tags)
    assert depths == dict.fromkeys(QUEUES, 0)  # every message the worker's queues got was consumed
    queues = fleet_queues(rabbitmq)
    assert {name: queues[name]["type"] for name in QUEUES} == dict.fromkeys(QUEUES, "quorum")


def _check_completed(s: ChainSession, client: redis.Redis, ids: list[int], tags: list[list[str]]) -> None:
    for task_id, task_tags in zip(ids, tags, strict=True):
        task = s.tasks.get_task(task_id)
        assert task.status == TaskStatus.COMPLETED and task.score >= 50
        winner = next(i for i, a in enumerate(AGENT_TYPES) if s.agent(i).address == task.assignee)
        assert set(task_tags) & set(AGENT_TYPES[winner].capabilities)  # the right specialist won
        assert ETH * 5 // 100 <= task.price <= ETH
    completed = s.tasks.contract.events.TaskCompleted().get_logs(from_block=0)
    assert {e["args"]["taskId"]: e["args"]["payment"] for e in completed} == {
        t: s.tasks.get_task(t).price for t in ids
    }  # each winner was paid its price
    assert client.xlen(keys.FAILURES) == 0


# --- (b) a worker killed with -9 inside the LLM call ------------------------------------------------------------
@pytest.mark.anvil
@pytest.mark.slow
def test_worker_killed_during_consider_is_redelivered_at_once_and_bids_once(
    tmp_path: Path, redis_server: RedisServer, rabbitmq: RabbitMQServer, httpserver: HTTPServer
) -> None:
    llm = SlowLLM(first_delay=4.0)
    httpserver.expect_request("/v1/chat/completions").respond_with_handler(llm)
    # claim_ttl 10: the heir finds the victim's claim still live and backs off (a countdown retry on the quorum
    # queue) until the claim lapses, at most 11 s; then it does the work itself.
    settings = {"confirmations": 0, "broker_url": rabbitmq.url, "claim_ttl": 10, "action_logging": "false"}
    with process_market(tmp_path, redis_server.url, **settings) as (s, env, client), use_broker(app, rabbitmq.url):
        app.conf.result_backend = redis_server.url
        env = {**env, "OPENAI_API_KEY": "sk-test-local", "OPENAI_BASE_URL": httpserver.url_for("/v1")}
        task_id = create_task(s, tags=["research"], window=120, mode=AuctionMode.OPEN)
        logs = tmp_path / "workers.log"
        first = worker(env, "victim", log=logs)
        second = None
        try:
            result = app.send_task(
                routing.CONSIDER, kwargs={"agent": s.agent(0).address, "task_id": task_id}, queue=RESEARCH
            )
            wait_until(lambda: llm.calls >= 1, 90, lambda: _tail(logs), interval=0.05)  # inside the LLM call now
            first.send_signal(signal.SIGKILL)
            killed, killed_at = time.monotonic(), time.time()
            first.wait(timeout=10)
            second = worker(env, "heir", log=logs)
            outcome = result.get(timeout=60)
            elapsed = time.monotonic() - killed
        finally:
            stop(first, *([second] if second is not None else []))
        received = _received_at(logs, routing.CONSIDER, result.id)  # the victim's, the heir's, the heir's retry...
        assert len(received) >= 2, _tail(logs)
        print(
            f"\nRabbitMQ, worker killed with -9 in consider: message back at a worker {received[1] - killed_at:.1f} s"
            f" after the kill (the heir's start), task done {elapsed:.1f} s after it"
        )
        assert outcome["status"] == "bid", _tail(logs)
        assert elapsed < 30, f"{elapsed:.1f} s"
        assert list(bids_on(s, task_id, client)) == [s.agent(0).address.lower()]  # exactly one bid
        assert client.xlen(keys.FAILURES) == 0


def _received_at(log: Path, task: str, task_id: str) -> list[float]:
    """When the workers logging to ``log`` received that task's message (epoch seconds, in order)."""
    marker = f"Task {task}[{task_id}] received"
    lines = log.read_text(errors="replace").splitlines()
    return [datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp() for line in lines if marker in line]


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no worker log)"
