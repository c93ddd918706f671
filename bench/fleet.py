"""Benchmark the fleet: lifecycle throughput, per-message overhead, and scaling with LLM latency.

Run: ``.venv/bin/python -m bench.fleet [--tasks 20] [--messages 300] [--delay 0.2]``. Every figure is printed
next to a baseline measured in the same run:

1. lifecycle: tasks/s through the whole fleet (listener + Celery worker + offline provider: create, bid,
   finalize, execute, submit, score, complete) against the same on-chain transactions sent by a plain script.
2. overhead: messages/s of ``workers.tasks.consider`` for work already done (argument validation + ledger
   check, no chain call) against a bare no-op Celery task on the same worker.
3. scaling: consider tasks/s with an OpenAI-compatible server that answers after a fixed delay, for thread
   pools of 1, 2 and 4, against the ideal concurrency / (2 x delay) (a consider makes two LLM calls).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from celery.contrib.testing.worker import start_worker

from agentfleet.bidding.sealed import bids_seen
from agentfleet.chain.local import advance_time
from agentfleet.protocol import routing
from agentfleet.protocol.app import app
from agentfleet.protocol.status import TaskStatus
from agentfleet.runtime import runtime
from shell.services import RedisServer, free_port
from testkit.chain import ETH, create_task, deployed_market
from testkit.fleet import pump, running_fleet
from testkit.llm import completion

RESEARCH = routing.agent_queue("research")
BENCH_QUEUE = routing.agent_queue("bench")  # a queue no listener feeds: only the benchmark's messages


def plain_script(tasks: int) -> float:
    """The lifecycle's transactions, sent one after another by a script with the chain client."""
    with deployed_market("anvil", Path(tempfile.mkdtemp())) as s:
        began = time.perf_counter()
        ids = [create_task(s, window=30) for _ in range(tasks)]
        for task_id in ids:
            s.auction.place_bid(s.agent(0), task_id, ETH // 2)
        advance_time(s.client.w3, 31)
        for task_id in ids:
            s.auction.finalize(s.requester, task_id)
            s.tasks.submit_result(s.agent(0), task_id, b"\x01" * 32, "sha256:01")
            s.tasks.complete_task(s.evaluator, task_id, 80)
        return tasks / (time.perf_counter() - began)


def fleet_lifecycle(server: RedisServer, tasks: int) -> tuple[float, float]:
    with running_fleet(Path(tempfile.mkdtemp()), server, action_logging=False) as (s, listener, client):
        began = time.perf_counter()
        ids = [create_task(s, window=30, text="research task") for _ in range(tasks)]
        pump(listener, lambda: all(bids_seen(client, t) >= 1 for t in ids), timeout=600)
        advance_time(s.client.w3, 31)
        app.send_task(routing.FINALIZE_DUE, queue=routing.KEEPER)
        pump(listener, lambda: all(s.tasks.status_of(t) == TaskStatus.COMPLETED for t in ids), timeout=600)
        lifecycle = tasks / (time.perf_counter() - began)

        agent = s.agent(0).address
        n = args.messages
        began = time.perf_counter()
        results = [
            app.send_task(routing.CONSIDER, kwargs={"agent": agent, "task_id": 1}, queue=RESEARCH) for _ in range(n)
        ]
        for r in results:
            r.get(timeout=120)
        ours = n / (time.perf_counter() - began)
    return lifecycle, ours


def bare_celery(server: RedisServer, n: int) -> float:
    app.conf.broker_url = server.url
    app.conf.result_backend = server.url
    with start_worker(app, pool="solo", queues=[RESEARCH], perform_ping_check=False):
        began = time.perf_counter()
        # celery.accumulate: the no-op every Celery app has built in (nothing registered on the fleet's app)
        results = [app.send_task("celery.accumulate", args=(None,), queue=RESEARCH) for _ in range(n)]
        for r in results:
            r.get(timeout=120)
        return n / (time.perf_counter() - began)


class DelayedLLM(BaseHTTPRequestHandler):
    delay = 0.2

    def log_message(self, *_args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(self.delay)
        data = json.dumps(completion({"score": 90, "reasoning": "fits", "fraction": 0.6})).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def scaling(server: RedisServer, delay: float, per_run: int) -> list[tuple[int, float]]:
    DelayedLLM.delay = delay
    llm = ThreadingHTTPServer(("127.0.0.1", free_port()), DelayedLLM)
    threading.Thread(target=llm.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{llm.server_address[1]}/v1"
    figures = []
    try:
        for concurrency in (1, 2, 4):
            with running_fleet(
                Path(tempfile.mkdtemp()),
                server,
                pool="threads",
                concurrency=concurrency,
                queues=[BENCH_QUEUE],
                openai_api_key="sk-bench",
                openai_base_url=url,
                action_logging=False,
                llm_rate_per_second=1000,
                llm_burst=1000,
            ) as (s, _, _c):
                ids = [create_task(s, tags=["research"], window=600) for _ in range(per_run)]
                agents = [s.agent(i).address for i in range(5)]
                runtime()  # build shared resources before the threads race for them
                began = time.perf_counter()
                results = [
                    app.send_task(routing.CONSIDER, kwargs={"agent": agents[i % 5], "task_id": t}, queue=BENCH_QUEUE)
                    for i, t in enumerate(ids)
                ]
                for r in results:
                    r.get(timeout=300)
                figures.append((concurrency, per_run / (time.perf_counter() - began)))
    finally:
        llm.shutdown()
    return figures


def main() -> None:
    global args
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--delay", type=float, default=0.2, help="LLM answer delay (s)")
    args = parser.parse_args()
    server = RedisServer.start()
    try:
        script = plain_script(args.tasks)
        lifecycle, ours = fleet_lifecycle(server, args.tasks)
        bare = bare_celery(server, args.messages)
        scaled = scaling(server, args.delay, 16)
    finally:
        server.stop()
    print(f"{'measurement':<58}{'rate':>10}{'ratio':>8}")
    print(f"{'plain script, same transactions (tasks/s, baseline)':<58}{script:>10.2f}{1.0:>8.2f}")
    print(f"{'fleet lifecycle, offline provider (tasks/s)':<58}{lifecycle:>10.2f}{lifecycle / script:>8.2f}")
    print(f"{'bare Celery no-op task (msg/s, baseline)':<58}{bare:>10.1f}{1.0:>8.2f}")
    print(f"{'consider on done work: validation + ledger (msg/s)':<58}{ours:>10.1f}{ours / bare:>8.2f}")
    for concurrency, rate in scaled:
        ideal = concurrency / (2 * args.delay)  # two LLM calls per consider: fit, then bid advice
        label = f"consider, LLM delay {args.delay}s, {concurrency} threads (tasks/s)"
        print(f"{label:<58}{rate:>10.2f}{rate / ideal:>8.2f}  (ideal {ideal:.1f})")


args: argparse.Namespace

if __name__ == "__main__":
    main()
