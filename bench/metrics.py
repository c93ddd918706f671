"""Benchmark the cost of the workers' Prometheus metrics on task throughput.

Run: ``.venv/bin/python -m bench.metrics [--tasks 3000]``. The same trivial task (INCR a counter) runs on a
``celery worker`` process of a bare app, once as plain Celery (baseline) and once with the fleet's metric
handlers connected and served (``AGENTFLEET_WORKER_METRICS_PORT``: task counters, results by status, a run
time histogram; prometheus_client's multiprocess files), for the solo pool and for prefork with 2 children.
The figure is tasks/s from the first publish to the last INCR; the endpoint is scraped afterwards to check it
counted every task.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import redis

from shell.services import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent


def run(server: RedisServer, tasks: int, pool: list[str], metrics_port: int | None) -> float:
    client = redis.Redis.from_url(server.url)
    client.flushall()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTFLEET_", "PROMETHEUS_"))}
    env["BENCH_REDIS_URL"] = server.url
    if metrics_port is not None:
        env |= {"BENCH_WITH_FLEET_METRICS": "1", "AGENTFLEET_WORKER_METRICS_PORT": str(metrics_port)}
    celery = str(Path(sys.executable).with_name("celery"))
    worker = subprocess.Popen(
        [
            celery,
            "-A",
            "bench.noop_app",
            "worker",
            *pool,
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        os.environ["BENCH_REDIS_URL"] = server.url
        from bench.noop_app import app

        app.conf.broker_url = server.url
        app.send_task("bench.count")  # warm-up: the worker is up once it counted this one
        deadline = time.monotonic() + 60
        while int(client.get("bench:count") or 0) < 1:
            if time.monotonic() > deadline:
                raise TimeoutError("the worker did not start")
            time.sleep(0.05)
        began = time.perf_counter()
        with app.producer_or_acquire() as producer:
            for _ in range(tasks):
                app.send_task("bench.count", producer=producer)
        while int(client.get("bench:count") or 0) < tasks + 1:
            time.sleep(0.01)
        rate = tasks / (time.perf_counter() - began)
        if metrics_port is not None:
            text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
            line = next(x for x in text.splitlines() if x.startswith("agentfleet_worker_results_total{"))
            assert float(line.split()[-1]) == tasks + 1, line
        return rate
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3000)
    args = parser.parse_args()
    server = RedisServer.start()
    try:
        print(f"{'measurement (tasks/s)':58s} {'value':>8s} {'ratio':>7s}")
        for label, pool in (("solo", ["-P", "solo"]), ("prefork -c 2", ["-P", "prefork", "-c", "2"])):
            bare = run(server, args.tasks, pool, None)
            metered = run(server, args.tasks, pool, free_port())
            print(f"{'bare Celery, ' + label + ' (baseline)':58s} {bare:8.0f} {1.0:7.2f}")
            print(f"{'with the fleet metrics served, ' + label:58s} {metered:8.0f} {metered / bare:7.2f}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
