"""The listener as operators run it: its command line, one log line per attempt through RPC and Redis outages
(recovering without a restart, never showing a password), and the nonce-counter reset on a deep reorg."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from agentfleet.chain.connect import http_web3
from agentfleet.chain.session import ChainSession
from agentfleet.protocol import keys, routing
from agentfleet.settings import Settings
from chain_listener.listener import Listener, RedactingFilter
from shell.services import AnvilNode, RedisServer, free_port
from testkit.chain import ETH, clean_env, create_task, deployed_market, fleet_env
from testkit.listener import add_fleet_agents, celery_app, queued
from testkit.wait import wait_until

pytestmark = pytest.mark.anvil
ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT = f"{keys.LISTENER}:31337:checkpoint"  # CheckpointStore's key on anvil's chain
SECRET = "s3cret-pw"


def run_cli(*args: str) -> tuple[subprocess.CompletedProcess[str], int]:
    """``python -m chain_listener ARGS`` with the chain and Redis on closed ports: any access would log them
    (and the listener would not exit by itself: the timeout would fail the test)."""
    rpc_port = free_port()
    env = {
        **clean_env(),
        "AGENTFLEET_RPC_URLS": f"http://127.0.0.1:{rpc_port}",
        "AGENTFLEET_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
    }
    done = subprocess.run(
        [sys.executable, "-m", "chain_listener", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=10
    )
    return done, rpc_port


def test_help_prints_usage_and_the_settings_and_exits_0() -> None:
    started = time.monotonic()
    done, rpc_port = run_cli("--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m chain_listener")
    assert "Follow the fleet's contracts" in done.stdout
    for name in ("AGENTFLEET_RPC_URLS", "AGENTFLEET_REDIS_URL", "AGENTFLEET_CONFIRMATIONS"):
        assert name in done.stdout
    assert f"127.0.0.1:{rpc_port}" not in done.stdout + done.stderr and done.stderr == ""
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("args", [["--bogus"], ["follow"], ["--rpc-urls", "http://127.0.0.1:1"]])
def test_unknown_flag_or_argument_prints_usage_and_exits_2(args: list[str]) -> None:
    done, rpc_port = run_cli(*args)
    assert done.returncode == 2
    assert done.stderr.startswith("usage: python -m chain_listener")
    assert "error: unrecognized arguments" in done.stderr
    assert f"127.0.0.1:{rpc_port}" not in done.stderr and "listener following" not in done.stderr


def start_listener(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """The listener as a process, logging to ``log_path``; returns once it runs (its imports take ~1.5 s)."""
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chain_listener"], cwd=ROOT, env=env, stdout=log_file, stderr=log_file
        )
    try:
        wait_until(
            lambda: "listener following" in log_path.read_text() or proc.poll() is not None,
            20,
            lambda: f"the listener did not start: {log_path.read_text()[-2000:]}",
        )
    except AssertionError:
        kill(proc)
        raise
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    assert proc.wait(timeout=20) == 0  # SIGTERM: a clean stop


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait(timeout=20)


def assert_one_line_per_attempt(log: str, endpoint: str) -> None:
    lines = [line for line in log.splitlines() if endpoint in line]
    assert len(lines) >= 3, log
    assert all(" WARNING " in line and "Connection refused" in line for line in lines), log
    assert len(lines) == len(log.splitlines()) - 1, log  # besides the start line, only one-line attempts
    assert "Traceback" not in log


def test_rpc_outage_logs_one_line_per_attempt_and_recovers_when_the_node_comes_up(
    tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    with deployed_market("anvil", tmp_path) as session:
        add_fleet_agents(session, redis_client, ["research"])
        state = session.client.w3.provider.make_request("anvil_dumpState", [])["result"]  # type: ignore[arg-type]
        env = fleet_env(session, redis_server.url, confirmations=0)
    port = free_port()  # nothing listens here yet
    env["AGENTFLEET_RPC_URLS"] = f"http://fleet:{SECRET}@127.0.0.1:{port}"  # anvil ignores the user info
    proc = start_listener(env, tmp_path / "listener.log")
    try:
        time.sleep(3)
        assert_one_line_per_attempt((tmp_path / "listener.log").read_text(), f"127.0.0.1:{port}")
        assert not redis_client.exists(CHECKPOINT)

        node = AnvilNode.start(port=port)  # the same chain comes back on the same port
        try:
            requests.post(node.url, json={"jsonrpc": "2.0", "id": 1, "method": "anvil_loadState", "params": [state]})
            wait_until(lambda: redis_client.exists(CHECKPOINT), 20, "the listener did not checkpoint")
            back = ChainSession.open(
                Settings(contract_addresses_path=session.settings.contract_addresses_path), w3=http_web3(node.url)
            )
            task_id = create_task(back, tags=["research"])
            research = routing.agent_queue("research")
            wait_until(
                lambda: any(w["kwargs"]["task_id"] == task_id for w in queued(redis_client, research)),
                20,
                f"task {task_id} was not queued",
            )
            stop(proc)
        finally:
            node.stop()
    finally:
        kill(proc)
    log = (tmp_path / "listener.log").read_text()
    assert "listener recovered after" in log and "Traceback" not in log and SECRET not in log


def test_redis_outage_logs_one_line_per_attempt_and_recovers_when_redis_comes_up(tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://:{SECRET}@127.0.0.1:{port}/0"
    with deployed_market("anvil", tmp_path) as session:
        proc = start_listener(fleet_env(session, url, confirmations=0), tmp_path / "listener.log")
        try:
            time.sleep(3)
            assert_one_line_per_attempt((tmp_path / "listener.log").read_text(), f"127.0.0.1:{port}")

            server = RedisServer.start(port=port, password=SECRET)
            client = redis.Redis.from_url(url)
            try:
                wait_until(lambda: client.exists(CHECKPOINT), 20, "the listener did not checkpoint")
                stop(proc)
            finally:
                client.close()
                server.stop()
        finally:
            kill(proc)
    log = (tmp_path / "listener.log").read_text()
    assert "listener recovered after" in log and "Traceback" not in log and SECRET not in log


def test_outage_tracebacks_only_at_debug_and_no_secret_even_there(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://fleet:{SECRET}@127.0.0.1:{free_port()}/v3/key-{SECRET}"  # nothing listens
    settings = Settings(rpc_urls=[url], contract_addresses_path=ROOT / "contract_addresses.json")
    client = redis.Redis.from_url(redis_server.url)
    listener = Listener.build(settings, app=celery_app(redis_server.url), redis_client=client)
    listener.retry_initial = 0.05
    caplog.handler.addFilter(RedactingFilter(listener.redact))  # what main() puts on its log handlers
    with caplog.at_level(logging.DEBUG):
        listener.run(max_seconds=0.5)
    client.close()

    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) >= 4 and not any("\n" in r.getMessage() or r.exc_info for r in warnings)
    tracebacks = [r for r in caplog.records if "Traceback" in r.getMessage()]
    assert tracebacks and {r.levelno for r in tracebacks} == {logging.DEBUG}
    assert any(r.name.startswith("web3") for r in caplog.records)  # web3 logs the request URI at DEBUG ...
    assert SECRET not in caplog.text  # ... redacted


@pytest.fixture
def market(tmp_path: Path) -> Iterator[ChainSession]:
    with deployed_market("anvil", tmp_path) as session:
        yield session


def drain(listener: Listener) -> None:
    for _ in range(100):
        result = listener.step()
        if not result.advanced and not result.retried and not result.reorg_depth:
            return
    raise AssertionError("listener did not catch up")


@pytest.mark.parametrize("events", [True, False], ids=["orphaned-events", "empty-blocks"])
def test_deep_reorg_resets_the_fleet_nonce_counters(
    market: ChainSession,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
    events: bool,
) -> None:
    s = market
    add_fleet_agents(s, redis_client, ["research"])
    settings = Settings(
        rpc_urls=[s.client.w3.provider.endpoint_uri],
        confirmations=0,  # type: ignore[attr-defined]
        contract_addresses_path=s.settings.contract_addresses_path,
    )
    listener = Listener.build(settings, app=celery_app(redis_server.url), redis_client=redis_client)
    # The fleet's sender: its nonce counters live in Redis (RedisNonceAllocator).
    fleet = ChainSession.open(settings, w3=s.client.w3, redis_client=redis_client)
    agent = fleet.agent(0)
    counter = f"{keys.NONCE}:31337:{agent.address.lower()}"
    task_id = create_task(s)
    drain(listener)
    if events:
        fleet.auction.place_bid(agent, task_id, ETH // 2)  # this bid is about to vanish with its block
    else:
        fleet.client.nonces.advance(agent.address, 5)  # a counter ahead of the node, no events in the blocks
        s.client.w3.provider.make_request("anvil_mine", [1])  # type: ignore[arg-type]
    drain(listener)
    assert redis_client.exists(counter)
    redis_client.set(f"{counter}:lock", "held-by-a-sender", px=60_000)
    unrelated = f"{keys.ROOT}:nonces-report"
    redis_client.set(unrelated, "not a counter")

    s.client.w3.provider.make_request("anvil_reorg", [1, []])  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="chain_listener.listener"):
        drain(listener)

    assert not redis_client.exists(counter)
    assert redis_client.get(f"{counter}:lock") == b"held-by-a-sender"
    assert redis_client.exists(unrelated)
    resets = [r.getMessage() for r in caplog.records if "nonce counters" in r.getMessage()]
    assert resets == ["deep reorg: reset 1 fleet nonce counters; senders re-read their nonces from the node"]
    if events:  # the sender re-reads its nonce from the node: its next bid lands (with the counter it would hang)
        redis_client.delete(f"{counter}:lock")
        assert fleet.auction.place_bid(agent, task_id, ETH // 3)["status"] == 1
