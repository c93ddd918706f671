"""The listener under faults: SIGKILL mid-batch, and an RPC endpoint that errors, stalls and refuses ranges."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis

from agentfleet.chain.session import ChainSession
from agentfleet.protocol import routing
from agentfleet.settings import Settings
from chain_listener.listener import Listener
from chain_listener.rpc import RpcPool
from shell.services import RedisServer, free_port
from testkit.chain import deployed_market, fleet_env
from testkit.listener import add_fleet_agents, celery_app, emit_tasks, queued, stream
from testkit.wait import wait_until

pytestmark = pytest.mark.anvil
ROOT = Path(__file__).resolve().parent.parent
RESEARCH = routing.agent_queue("research")


@pytest.fixture
def market(tmp_path: Path) -> Iterator[ChainSession]:
    with deployed_market("anvil", tmp_path) as session:
        yield session


def listener_process(session: ChainSession, server: RedisServer, **extra: str) -> subprocess.Popen[bytes]:
    env = {
        **fleet_env(session, server.url, confirmations=0, listener_batch_blocks=20, listener_max_batch_blocks=20),
        **extra,
    }
    return subprocess.Popen([sys.executable, "-m", "chain_listener"], cwd=ROOT, env=env, stderr=subprocess.DEVNULL)


def test_sigkill_mid_batch_then_restart_loses_and_doubles_nothing(
    market: ChainSession, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    add_fleet_agents(market, redis_client, ["research"])
    emit_tasks(market, 600)
    first = listener_process(market, redis_server)
    wait_until(lambda: redis_client.llen(RESEARCH) >= 150, 120, "150 tasks' work queued", interval=0.01)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    interrupted_at = redis_client.llen(RESEARCH)
    assert interrupted_at < 600, "the kill came too late to test anything"

    port = free_port()
    second = listener_process(market, redis_server, AGENTFLEET_LISTENER_METRICS_PORT=str(port))
    try:
        wait_until(
            lambda: len({e["id"] for e in stream(redis_client) if e.get("name") == "TaskCreated"}) >= 600,
            120,
            "600 TaskCreated events in the stream",
            interval=0.01,
        )
        time.sleep(0.5)  # anything extra would show up now
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert "agentfleet_listener_head_lag_blocks 0.0" in metrics
        assert 'agentfleet_listener_events_total{event="TaskCreated"}' in metrics
        assert "agentfleet_listener_checkpoint_block" in metrics
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=20) == 0  # SIGTERM: clean stop after the current step

    work = queued(redis_client, RESEARCH)
    keys = [w["id"] for w in work]
    assert len(set(keys)) == 600  # no gap: every task's work exists
    assert sorted({w["kwargs"]["task_id"] for w in work}) == list(range(1, 601))
    # At most the one send in flight at the kill can repeat, under the same task id (workers drop it).
    assert len(keys) - len(set(keys)) <= 1
    created = [e["id"] for e in stream(redis_client) if e.get("name") == "TaskCreated"]
    assert len(created) == len(set(created)) == 600


class FlakyProxy(BaseHTTPRequestHandler):
    """Forwards JSON-RPC to anvil, but fails every 6th request, stalls every 9th, refuses big log ranges."""

    upstream = ""
    counter = 0
    lock = threading.Lock()
    max_range = 16

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            type(self).counter += 1
            n = self.counter
        if n % 6 == 0:
            self._reply(500, b"upstream exploded")
            return
        if n % 9 == 0:
            time.sleep(1.5)  # longer than the client's timeout
        request = json.loads(body)
        if isinstance(request, dict) and request.get("method") == "eth_getLogs":
            params = request["params"][0]
            span = int(params["toBlock"], 16) - int(params["fromBlock"], 16)
            if span > self.max_range:
                error = {"code": -32005, "message": "query returned more than 10000 results"}
                self._reply(200, json.dumps({"jsonrpc": "2.0", "id": request["id"], "error": error}).encode())
                return
        upstream = urllib.request.Request(self.upstream, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(upstream, timeout=10) as answer:
            self._reply(200, answer.read())

    def _reply(self, status: int, payload: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout): that is the point


def test_flaky_rpc_slows_the_listener_but_loses_nothing(
    market: ChainSession, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    add_fleet_agents(market, redis_client, ["research"])
    emit_tasks(market, 120)
    FlakyProxy.upstream = market.client.w3.provider.endpoint_uri  # type: ignore[attr-defined]
    proxy = ThreadingHTTPServer(("127.0.0.1", free_port()), FlakyProxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{proxy.server_address[1]}"
        settings = Settings(
            rpc_urls=[url],
            confirmations=0,
            listener_batch_blocks=200,
            contract_addresses_path=market.settings.contract_addresses_path,
        )
        errors: list[str] = []
        pool = RpcPool(
            [url],
            timeout=1.0,
            backoff_initial=0.01,
            backoff_max=0.05,
            attempts=30,
            on_error=lambda _url, exc: errors.append(type(exc).__name__),
        )
        listener = Listener.build(settings, app=celery_app(redis_server.url), redis_client=redis_client, pool=pool)
        head = market.client.w3.eth.block_number
        for _ in range(2000):
            try:
                listener.step()
            except Exception:  # what Listener.run does: log, back off, carry on
                continue
            checkpoint = listener.follower.store.load()
            if checkpoint and checkpoint.number >= head:
                break
    finally:
        proxy.shutdown()

    work = queued(redis_client, RESEARCH)
    assert sorted(w["kwargs"]["task_id"] for w in work) == list(range(1, 121))
    # It shrank its ranges to the provider's cap (growing back past it only to be refused again).
    assert listener.follower.fetcher.batch <= 2 * (FlakyProxy.max_range + 1) < 200
    assert "HTTPError" in errors  # 500s were met and failed over
    assert FlakyProxy.counter >= 18  # ... and so were stalled answers (every 9th request)
