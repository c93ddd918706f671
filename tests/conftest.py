"""Fixtures that start real parts on free ports and tear them down: redis-server, anvil, py-evm."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shell import services
from shell.services import AnvilNode, RedisServer

os.environ.setdefault("HYPOTHESIS_PROFILE", "ci")
ARTIFACTS_OUT = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(autouse=True)
def services_started_by_this_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test sees only the services it started itself in ``kill_started_services`` (the demo's last resort at
    Ctrl-C kills every service its process started): the session's Redis, started by this process too, must
    survive a test of that last resort (CI once lost it, and 13 tests after it)."""
    monkeypatch.setattr(services, "_LIVE", set())


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the session (its own free port, no persistence)."""
    server = RedisServer.start()
    yield server
    # Celery results unsubscribe from the result back end when collected: let them do it while it still runs
    # (otherwise the interpreter's exit spends 20 s retrying a server that is gone).
    gc.collect()
    server.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client on a clean database: every test starts from an empty Redis."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def anvil() -> Iterator[AnvilNode]:
    """A fresh anvil chain per test (0.2 s to start): no state leaks between tests."""
    node = AnvilNode.start()
    yield node
    node.stop()


@pytest.fixture(scope="session")
def artifacts_out() -> Path:
    """Where tests keep files worth looking at afterwards (screenshots, plots)."""
    ARTIFACTS_OUT.mkdir(exist_ok=True)
    return ARTIFACTS_OUT
