"""A running fleet for tests: anvil, the contracts, five registered agents, a real Celery worker in a thread
(on Redis, or on another broker such as RabbitMQ with ``broker_url``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import redis
from celery.contrib.testing.worker import start_worker

from agentfleet.chain.local import fund
from agentfleet.chain.session import ChainSession
from agentfleet.directory import AgentDirectory
from agentfleet.profiles import AGENT_TYPES
from agentfleet.protocol.app import app
from agentfleet.protocol.routing import WORKER_QUEUES
from agentfleet.runtime import Runtime, use_runtime
from agentfleet.settings import Settings
from chain_listener.listener import Listener
from shell.fleet import register_fleet
from shell.services import RedisServer
from testkit.broker import use_broker
from testkit.chain import ETH, deployed_market

QUEUES = list(WORKER_QUEUES)  # an agent worker's queues: every profile, evaluation, keeper


@contextmanager
def running_fleet(
    tmp_path: Path,
    redis_server: RedisServer,
    *,
    pool: str = "solo",
    concurrency: int = 1,
    queues: list[str] | None = None,
    broker_url: str | None = None,
    **overrides: Any,
) -> Iterator[tuple[ChainSession, Listener, redis.Redis]]:
    """``broker_url``: the Celery broker (e.g. a ``RabbitMQServer``'s amqp:// URL) for the listener's sends and
    the worker, with that broker's settings until the block ends; unset, Redis is the broker as well. Results
    and every other piece of state are in ``redis_server`` either way."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    with deployed_market("anvil", tmp_path, register=0) as session, ExitStack() as broker:
        settings = Settings(
            rpc_urls=[session.client.w3.provider.endpoint_uri],  # type: ignore[attr-defined]
            redis_url=redis_server.url,
            confirmations=0,
            contract_addresses_path=session.settings.contract_addresses_path,
            **{"training_confirmations": 0, **({"broker_url": broker_url} if broker_url else {}), **overrides},
        )
        for number in range(len(AGENT_TYPES)):
            fund(session.client.w3, session.agent(number).address, 100 * ETH)
        register_fleet(session, AgentDirectory(client), AGENT_TYPES)
        use_runtime(Runtime.build(settings))
        if broker_url is None:
            app.conf.broker_url = redis_server.url
        else:
            broker.enter_context(use_broker(app, broker_url, settings))
        app.conf.result_backend = redis_server.url
        listener = Listener.build(settings, app=app, redis_client=client)
        try:
            with start_worker(
                app,
                pool=pool,
                concurrency=concurrency,
                queues=queues or QUEUES,
                perform_ping_check=False,
                shutdown_timeout=30,
                # amqp: an ack scheduled inside the event loop's ready callbacks waits for its next timer
                # (kombu#1587); the heartbeat's is 2 s away, without it the next is 10 s away.
                **({"without_heartbeat": False} if broker_url else {}),
            ):
                yield session, listener, client
        finally:
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
