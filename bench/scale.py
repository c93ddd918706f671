"""What one new task costs the fleet as the fleet grows, and what the fleet gets done with more workers (issue 13).

Run: ``.venv/bin/python -m bench.scale [--agents 5,20,50] [--mode open|sealed] [--workers 1,2,4] [--tasks 12]``.

1. Per new task, per fleet size: a fresh anvil behind a counting JSON-RPC proxy (every process of the fleet
   talks to the chain through it), a fresh redis-server, N agents registered with the task's capability (two
   in five weak at it: weight 10, below the prefilter's 30), the listener and one solo Celery worker in this
   process, an OpenAI-compatible server here that counts requests and tokens. One task is posted; the window
   closes when every agent has decided. Counted: JSON-RPC calls by method (batch entries one by one), split
   into the send path of a transaction (estimate, nonce, send, receipt) and everything else (reads); Redis
   commands (``INFO commandstats``); Celery messages (LPUSH onto the queues); LLM requests and tokens, and
   the agents the prefilter kept from asking; gas of the transactions mined. What must not grow with N: the
   reads per task and the messages per profile (up to ``consider_batch`` agents per message).
2. A worker deciding with ``AGENTFLEET_BIDDING_STRATEGY=rl``: VmRSS after 100 decisions, and whether torch was
   imported (a child process that does what a worker does: ``RLBiddingStrategy`` on a ``PolicyCache``).
3. Lifecycle throughput with 1, 2 and 4 worker processes (``celery -A workers worker -P solo`` each, all
   queues), the listener and the keeper's sweep here, an LLM answering after 0.2 s: tasks/s from creation to
   completion, and the ratio to one worker. The baseline is the same run's one-worker figure.
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
from testkit.llm import completion


def _reply_json(handler: BaseHTTPRequestHandler, data: bytes) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


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
                _reply_json(self, data)

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


class CountingLLM:
    """An OpenAI-compatible server that counts requests and tokens and answers by the requested schema."""

    def __init__(self, delay: float = 0.0) -> None:
        self.requests = 0
        self.tokens = 0
        self.lock = threading.Lock()
        llm = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                schema = json.dumps(body.get("response_format", {}))
                if "fraction" in schema:
                    content = '{"fraction": 0.6, "reasoning": "fair"}'
                elif '"content"' in schema:
                    content = '{"content": "the deliverable covers research"}'
                elif "feedback" in schema:
                    content = '{"score": 85, "feedback": "complete"}'
                else:
                    content = '{"score": 80, "reasoning": "fits"}'
                reply = completion(content)
                with llm.lock:
                    llm.requests += 1
                    llm.tokens += int(reply["usage"]["total_tokens"])
                time.sleep(delay)
                data = json.dumps(reply).encode()
                _reply_json(self, data)

            def log_message(self, *_args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


SEND_PATH = {"eth_estimateGas", "eth_sendRawTransaction", "eth_getTransactionReceipt", "eth_getTransactionCount"}
WEAK = (3, 4)  # agents n with n % 5 in WEAK are weak at the task's capability (weight 10)
LLM_SETTINGS = {"openai_api_key": "sk-bench-local", "llm_rate_per_second": 1000.0, "llm_burst": 1000}


@contextmanager
def fleet(agents: int, tmp: Path) -> Iterator[tuple[ChainSession, Listener, redis.Redis, CountingProxy, CountingLLM]]:
    server = RedisServer.start()
    client = redis.Redis.from_url(server.url)
    llm = CountingLLM()
    try:
        with deployed_market("anvil", tmp, register=0) as session:
            proxy = CountingProxy(session.client.w3.provider.endpoint_uri)  # type: ignore[attr-defined]
            for number in range(agents):
                fund(session.client.w3, session.agent(number).address, 10 * ETH)
            definitions = [
                AgentDefinition(name=f"Agent{n}", capabilities=["research"], weights=[10 if n % 5 in WEAK else 80])
                for n in range(agents)
            ]
            register_fleet(session, AgentDirectory(client), definitions)
            settings = Settings(
                rpc_urls=[proxy.url],
                redis_url=server.url,
                confirmations=0,
                training_confirmations=0,
                contract_addresses_path=session.settings.contract_addresses_path,
                openai_base_url=llm.url,
                **LLM_SETTINGS,  # type: ignore[arg-type]
            )
            use_runtime(Runtime.build(settings))
            app.conf.broker_url = server.url
            app.conf.result_backend = server.url
            follower = CountingProxy(session.client.w3.provider.endpoint_uri)  # type: ignore[attr-defined]
            listening = settings.model_copy(update={"rpc_urls": [follower.url]})
            listener = Listener.build(listening, app=app, redis_client=client)
            listener.rpc_proxy = follower  # type: ignore[attr-defined]
            try:
                queues = [routing.agent_queue("research")]
                with start_worker(app, pool="solo", queues=queues, perform_ping_check=False, shutdown_timeout=30):
                    yield session, listener, client, proxy, llm
            finally:
                use_runtime(None)
                proxy.close()
                follower.close()
    finally:
        llm.close()
        server.stop()


def one_task(agents: int, mode: AuctionMode) -> dict[str, Any]:
    with fleet(agents, Path(tempfile.mkdtemp())) as (s, listener, client, proxy, llm):
        listener.step()  # catch up on the registrations before counting
        follower: CountingProxy = listener.rpc_proxy  # type: ignore[attr-defined]
        rpc_before, redis_before, block = proxy.snapshot(), redis_commands(client), s.client.w3.eth.block_number
        followed_before = follower.snapshot()
        llm_before = (llm.requests, llm.tokens)
        task_id = create_task(s, window=600, mode=mode, text="Survey recent research on rollup fraud proofs")
        decided = lambda: len(client.keys(f"{keys.WORK}:done:consider:{task_id}:*")) >= agents  # noqa: E731
        deadline = time.monotonic() + 600
        while not decided():
            listener.step()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{agents} agents did not all decide on task {task_id}")
            time.sleep(0.05)
        rpc = proxy.snapshot() - rpc_before
        followed = follower.snapshot() - followed_before
        commands = redis_commands(client) - redis_before
        w3 = s.client.w3
        gas = sum(
            int(w3.eth.get_transaction_receipt(tx)["gasUsed"])
            for number in range(block + 1, w3.eth.block_number + 1)
            for tx in w3.eth.get_block(number)["transactions"]
        )
        results = [json.loads(client.get(k) or "{}") for k in client.keys(f"{keys.WORK}:done:consider:{task_id}:*")]
        return {
            "agents": agents,
            "rpc": rpc,
            "listener rpc": sum(followed.values()),
            "blocks": s.client.w3.eth.block_number - block,
            "redis": sum(commands.values()),
            "messages": commands["lpush"],
            "considers": agents,
            "prefiltered": sum(1 for r in results if r.get("prefiltered")),
            "llm requests": llm.requests - llm_before[0],
            "llm tokens": llm.tokens - llm_before[1],
            "bids": len(bids_on(s, task_id, client)),
            "gas": gas,
        }


def rl_worker_rss(decisions: int = 100) -> tuple[bool, float, int]:
    """What a worker bidding with RL holds: (torch imported?, VmRSS MB, bids) after ``decisions`` decisions."""
    from agentfleet.bidding.context import BidContext
    from agentfleet.bidding.policy_net import PolicyCache
    from agentfleet.bidding.rl import RLBiddingStrategy
    from agentfleet.profiles import AgentLearningConfig

    cache = PolicyCache(Path(tempfile.mkdtemp()))
    strategy = RLBiddingStrategy("0xbench", AgentLearningConfig.get_profile("balanced"), cache, warmup=0)
    bids = 0
    for i in range(decisions):
        ctx = BidContext(
            task_id=i + 1,
            reward_wei=10**18,
            tags=["research"],
            fit_score=60 + i % 40,
            capability_weights={"research": 70},
            reputation=50,
        )
        bids += strategy.decide(ctx).bid
    status = Path("/proc/self/status").read_text().splitlines()
    rss_kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))
    return "torch" in sys.modules, rss_kb / 1024, bids


def lifecycle(workers: int, tasks: int) -> dict[str, Any]:
    """Tasks/s from creation to completion with ``workers`` worker processes (see the module's docstring)."""
    from agentfleet.bidding.sealed import bids_seen
    from agentfleet.chain.local import advance_time
    from agentfleet.profiles import AGENT_TYPES
    from agentfleet.protocol.status import TaskStatus
    from testkit.chain import fleet_env

    server = RedisServer.start()
    client = redis.Redis.from_url(server.url)
    llm = CountingLLM(delay=0.2)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with deployed_market("anvil", Path(tempfile.mkdtemp()), register=0) as s:
            for number in range(len(AGENT_TYPES)):
                fund(s.client.w3, s.agent(number).address, 100 * ETH)
            register_fleet(s, AgentDirectory(client), AGENT_TYPES)
            env = fleet_env(s, server.url, confirmations=0, training_confirmations=0, **LLM_SETTINGS)
            env["AGENTFLEET_OPENAI_BASE_URL"] = llm.url
            settings = Settings(
                rpc_urls=[s.client.w3.provider.endpoint_uri],  # type: ignore[attr-defined]
                redis_url=server.url,
                confirmations=0,
                contract_addresses_path=s.settings.contract_addresses_path,
            )
            app.conf.broker_url = server.url
            app.conf.result_backend = server.url
            listener = Listener.build(settings, app=app, redis_client=client)
            celery = str(Path(sys.executable).with_name("celery"))
            queues = ",".join(routing.WORKER_QUEUES)
            for n in range(workers):
                command = [celery, "-A", "workers", "worker", "-P", "solo", "-Q", queues, "-n", f"w{n}@%h"]
                command += ["--without-gossip", "--without-mingle", "--loglevel", "ERROR"]
                procs.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            time.sleep(4)  # the workers start (imports) before the clock runs
            began = time.perf_counter()
            ids = [create_task(s, window=30, tags=["research"], text="research task") for _ in range(tasks)]
            _pump(listener, lambda: all(bids_seen(client, t) >= 1 for t in ids))
            advance_time(s.client.w3, 31)
            app.send_task(routing.FINALIZE_DUE, queue=routing.KEEPER)
            _pump(listener, lambda: all(s.tasks.status_of(t) == TaskStatus.COMPLETED for t in ids))
            return {"workers": workers, "tasks": tasks, "per_second": tasks / (time.perf_counter() - began)}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        llm.close()
        server.stop()


def _pump(listener: Listener, until: Any, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        listener.step()
        if time.monotonic() > deadline:
            raise TimeoutError("the fleet did not get there in time")
        time.sleep(0.05)


def _child(*args: str) -> Any:
    """One measurement in a process of its own (Celery's connection pools belong to one broker)."""
    command = [sys.executable, "-m", "bench.scale", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", default="5,20,50", help="fleet sizes, comma separated")
    parser.add_argument("--mode", choices=["open", "sealed"], default="open")
    parser.add_argument("--workers", default="1,2,4", help="worker processes for the throughput runs")
    parser.add_argument("--tasks", type=int, default=12, help="tasks per throughput run")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child: one fleet size, JSON out
    parser.add_argument("--rss", action="store_true", help=argparse.SUPPRESS)  # child: RL worker memory
    parser.add_argument("--lifecycle", type=int, help=argparse.SUPPRESS)  # child: throughput with N workers
    args = parser.parse_args()
    mode = AuctionMode[args.mode.upper()]
    if args.one:
        print(json.dumps(one_task(args.one, mode)))
        return
    if args.rss:
        print(json.dumps(rl_worker_rss()))
        return
    if args.lifecycle:
        print(json.dumps(lifecycle(args.lifecycle, args.tasks)))
        return

    rows = [_child("--one", n, "--mode", args.mode) for n in args.agents.split(",")]
    for row in rows:
        row["rpc"] = Counter(row["rpc"])
    methods = sorted({m for row in rows for m in row["rpc"]})
    print(f"1. one new task, {mode.label} auction: per fleet size (2 in 5 agents weak at the task)")
    print(f"{'':<34}" + "".join(f"{row['agents']:>10} ag" for row in rows))
    for method in methods:
        print(f"{'rpc ' + method:<34}" + "".join(f"{row['rpc'][method]:>13}" for row in rows))
    keys_printed = ("redis", "messages", "considers", "prefiltered", "llm requests", "llm tokens", "bids", "gas")
    for key in keys_printed:
        print(f"{key:<34}" + "".join(f"{row[key]:>13}" for row in rows))
    for key in ("blocks", "listener rpc"):
        print(f"{key:<34}" + "".join(f"{row[key]:>13}" for row in rows))
    reads = [sum(c for m, c in row["rpc"].items() if m not in SEND_PATH) for row in rows]
    sends = [sum(c for m, c in row["rpc"].items() if m in SEND_PATH) for row in rows]
    txs = [max(1, row["rpc"]["eth_sendRawTransaction"]) for row in rows]
    print(f"{'worker rpc reads (not sends)':<34}" + "".join(f"{r:>13}" for r in reads))
    print(f"{'rpc send-path calls per tx':<34}" + "".join(f"{c / t:>13.1f}" for c, t in zip(sends, txs, strict=True)))
    for row, read in zip(rows, reads, strict=True):
        asked = row["considers"] - row["prefiltered"]
        calls_per_asking = row["llm requests"] / max(1, asked)
        print(
            f"{row['agents']} agents: {read} worker reads per task, {row['listener rpc']} listener calls for "
            f"{row['blocks']} blocks, "
            f"{row['messages']} Celery messages, {row['llm requests']} LLM requests "
            f"(without the prefilter about {row['llm requests'] + round(calls_per_asking * row['prefiltered'])})"
        )
    growth = (reads[-1] - reads[0]) / max(1, rows[-1]["agents"] - rows[0]["agents"])
    print(f"worker reads added per extra agent: {growth:.2f} (issue 13: 0 beyond the send of each bid)")

    torch_loaded, rss_mb, bids = _child("--rss")
    print(f"\n2. RL worker after 100 decisions ({bids} bids): VmRSS {rss_mb:.0f} MB (< 150), torch: {torch_loaded}")

    print("\n3. lifecycle throughput (LLM answers after 0.2 s), tasks/s from creation to completion")
    figures = [_child("--lifecycle", w, "--tasks", str(args.tasks)) for w in args.workers.split(",")]
    base = figures[0]["per_second"]
    for fig in figures:
        rate = fig["per_second"]
        print(f"{fig['workers']} worker process(es): {rate:.2f} tasks/s ({rate / base:.2f}x one)")


if __name__ == "__main__":
    main()
