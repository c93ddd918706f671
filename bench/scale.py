"""What one new task costs the fleet as the fleet grows: RPC calls by method, Redis commands, Celery messages,
LLM asks and gas, for 5, 20 and 50 agents that can all do the task (issue 13, the measuring half).

Run: ``.venv/bin/python -m bench.scale [--agents 5,20,50] [--mode open|sealed]``.

Per fleet size: a fresh anvil behind a counting JSON-RPC proxy (every process of the fleet talks to the chain
through it), a fresh redis-server, N agents registered with the task's capability, the listener and one solo
Celery worker in this process, the offline LLM provider. One task is posted; the window closes when every
agent has decided (a bid or a refusal). Counted over that window: JSON-RPC calls by method (batch entries
one by one), Redis commands (``INFO commandstats``), Celery messages (LPUSH onto the queues), considers run
(each asks the LLM for a fit, and online once more for bid advice) and the gas of the transactions mined.
Baseline, in the same run: the calls a script needs to post the task and send the same bids itself (one
``eth_sendRawTransaction`` per bid plus the client's estimate, nonce and receipt calls), so the ratio shows what
the fleet adds per agent. The last lines print the per-agent growth: what issue 13 must bring down to zero
beyond one send per bid.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import redis
from celery.contrib.testing.worker import start_worker

from agentfleet.chain.connect import http_web3
from agentfleet.chain.local import fund
from agentfleet.chain.session import ChainSession
from agentfleet.directory import AgentDirectory
from agentfleet.profiles import AgentDefinition
from agentfleet.protocol import keys, routing
from agentfleet.protocol.app import app
from agentfleet.protocol.status import AuctionMode
from agentfleet.runtime import Runtime, use_runtime
from agentfleet.settings import Settings
from chain_listener.listener import Listener
from shell.fleet import register_fleet
from shell.services import RedisServer, free_port
from testkit.chain import ETH, bids_on, create_task, deployed_market


class CountingProxy:
    """A JSON-RPC pass-through that counts methods (thread-safe); ``url`` is what the fleet is given."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    parsed = json.loads(body)
                    entries = parsed if isinstance(parsed, list) else [parsed]
                    with proxy.lock:
                        proxy.calls.update(str(e.get("method")) for e in entries if isinstance(e, dict))
                except ValueError:
                    pass
                request = urllib.request.Request(proxy.upstream, body, {"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=60) as answer:
                    data = answer.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def snapshot(self) -> Counter[str]:
        with self.lock:
            return Counter(self.calls)

    def close(self) -> None:
        self.server.shutdown()


def redis_commands(client: redis.Redis) -> Counter[str]:
    stats = client.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()})


@contextmanager
def fleet(agents: int, tmp: Path) -> Iterator[tuple[ChainSession, Listener, redis.Redis, CountingProxy]]:
    server = RedisServer.start()
    client = redis.Redis.from_url(server.url)
    try:
        with deployed_market("anvil", tmp, register=0) as session:
            proxy = CountingProxy(session.client.w3.provider.endpoint_uri)  # type: ignore[attr-defined]
            for number in range(agents):
                fund(session.client.w3, session.agent(number).address, 10 * ETH)
            definitions = [AgentDefinition(name=f"Agent{n}", capabilities=["research"]) for n in range(agents)]
            register_fleet(session, AgentDirectory(client), definitions)
            settings = Settings(
                rpc_urls=[proxy.url],
                redis_url=server.url,
                confirmations=0,
                training_confirmations=0,
                contract_addresses_path=session.settings.contract_addresses_path,
            )
            use_runtime(Runtime.build(settings))
            app.conf.broker_url = server.url
            app.conf.result_backend = server.url
            listener = Listener.build(settings, app=app, redis_client=client)
            try:
                queues = [routing.agent_queue("research")]
                with start_worker(app, pool="solo", queues=queues, perform_ping_check=False, shutdown_timeout=30):
                    yield ChainSession.open(settings, w3=http_web3(proxy.url)), listener, client, proxy
            finally:
                use_runtime(None)
                proxy.close()
    finally:
        server.stop()


def one_task(agents: int, mode: AuctionMode) -> dict[str, Any]:
    with fleet(agents, Path(tempfile.mkdtemp())) as (s, listener, client, proxy):
        listener.step()  # catch up on the registrations before counting
        rpc_before, redis_before, block = proxy.snapshot(), redis_commands(client), s.client.w3.eth.block_number
        task_id = create_task(s, window=600, mode=mode)
        decided = lambda: len(client.keys(f"{keys.WORK}:done:consider:{task_id}:*")) >= agents  # noqa: E731
        deadline = time.monotonic() + 600
        while not decided():
            listener.step()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{agents} agents did not all decide on task {task_id}")
            time.sleep(0.05)
        rpc = proxy.snapshot() - rpc_before
        commands = redis_commands(client) - redis_before
        w3 = s.client.w3
        gas = sum(
            int(w3.eth.get_transaction_receipt(tx)["gasUsed"])
            for number in range(block + 1, w3.eth.block_number + 1)
            for tx in w3.eth.get_block(number)["transactions"]
        )
        bids = len(bids_on(s, task_id, client))
        return {
            "agents": agents,
            "rpc": rpc,
            "redis": sum(commands.values()),
            "messages": commands["lpush"],
            "considers": agents,
            "bids": bids,
            "gas": gas,
        }


def _child(agents: int, mode: str) -> dict[str, Any]:
    """One fleet size in a process of its own (Celery's connection pools belong to one broker)."""
    command = [sys.executable, "-m", "bench.scale", "--one", str(agents), "--mode", mode]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=True)
    row: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    row["rpc"] = Counter(row["rpc"])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", default="5,20,50", help="fleet sizes, comma separated")
    parser.add_argument("--mode", choices=["open", "sealed"], default="open")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # one fleet size, JSON out (a child run)
    args = parser.parse_args()
    mode = AuctionMode[args.mode.upper()]
    if args.one:
        print(json.dumps(one_task(args.one, mode)))
        return
    rows = [_child(int(n), args.mode) for n in args.agents.split(",")]
    methods = sorted({m for row in rows for m in row["rpc"]})
    print(f"one new task, {mode.label} auction, offline LLM: per fleet size")
    print(f"{'':<32}" + "".join(f"{row['agents']:>10} ag" for row in rows))
    for method in methods:
        print(f"{'rpc ' + method:<32}" + "".join(f"{row['rpc'][method]:>13}" for row in rows))
    for key in ("redis", "messages", "considers", "bids", "gas"):
        print(f"{key:<32}" + "".join(f"{row[key]:>13}" for row in rows))
    totals = [sum(row["rpc"].values()) for row in rows]
    print(f"{'rpc calls in all':<32}" + "".join(f"{t:>13}" for t in totals))
    # Baseline: a script's own calls for the same chain work: createTask plus one bid per bidder, each through
    # the client (estimate, fees, nonce, send, receipt): the send is the part that must stay per bid.
    sends = [row["rpc"]["eth_sendRawTransaction"] for row in rows]
    for row, total, send in zip(rows, totals, sends, strict=True):
        extra = (total - send) / max(1, row["agents"])
        per_send = total / max(1, send)
        print(f"{row['agents']} agents: {per_send:.1f} RPC calls per tx sent; {extra:.1f} per agent beyond sends")


if __name__ == "__main__":
    main()
