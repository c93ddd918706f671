"""Benchmark: listener backfill events/s against raw eth_getLogs + pipelined Redis writes, and head latency.

Run: ``.venv/bin/python -m bench.listener [--events 2000] [--samples 50]``. One fresh anvil and one
redis-server serve both sides in the same run, so the printed ratio cancels machine noise.

- baseline: eth_getLogs over the same block range in the same batch size, then one pipelined XADD per
  log (what a listener without decoding, confirmation checks, routing or idempotency would cost).
- listener: a cold ``Listener`` backfilling the same range: decode, verify block hashes, route, two-phase
  idempotent Celery sends, stream entries, checkpoint.
- head latency: a task is mined, the running listener (poll interval 50 ms, 0 confirmations) makes its
  work visible in Redis; p50/p99 over the samples.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import redis

from agentfleet.chain.session import ChainSession
from agentfleet.protocol.routing import agent_queue
from agentfleet.settings import Settings
from chain_listener.listener import Listener
from testkit.chain import deployed_market
from testkit.listener import add_fleet_agents, celery_app, emit_tasks

BATCH = 500
RESEARCH = agent_queue("research")


def baseline(url: str, client: redis.Redis, addresses: list[str], start: int, end: int) -> tuple[int, float]:
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(url))
    began = time.perf_counter()
    total = 0
    for first in range(start, end + 1, BATCH):
        logs = w3.eth.get_logs({"fromBlock": first, "toBlock": min(end, first + BATCH - 1), "address": addresses})
        pipe = client.pipeline(transaction=False)
        for entry in logs:
            pipe.xadd("baseline:events", {"tx": entry["transactionHash"].to_0x_hex(), "data": entry["data"].hex()})
        pipe.execute()
        total += len(logs)
    return total, time.perf_counter() - began


def head_latency(listener: Listener, session: ChainSession, client: redis.Redis, samples: int) -> list[float]:
    thread = threading.Thread(target=listener.run, daemon=True)
    thread.start()
    time.sleep(0.5)
    latencies = []
    for _ in range(samples):
        before = client.llen(RESEARCH)
        sent = time.perf_counter()  # anvil automines on arrival: sent ~ mined
        emit_tasks(session, 1, wait=False)
        while client.llen(RESEARCH) == before:
            time.sleep(0.001)
        latencies.append((time.perf_counter() - sent) * 1000)
        time.sleep(0.01)
    listener.stop()
    thread.join(timeout=5)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="TaskCreated events to backfill")
    parser.add_argument("--samples", type=int, default=50, help="head-latency samples")
    args = parser.parse_args()
    from shell.services import RedisServer

    server = RedisServer.start()
    client = redis.Redis.from_url(server.url)
    try:
        with deployed_market("anvil", Path(tempfile.mkdtemp())) as session:
            url = session.client.w3.provider.endpoint_uri  # type: ignore[attr-defined]
            add_fleet_agents(session, client, ["research"])
            emit_tasks(session, args.events)
            head = session.client.w3.eth.block_number
            record = session.settings.contract_addresses_path
            addresses = list(session.client.deployment.contracts.values()) if session.client.deployment else []
            start = session.client.deployment.deployment_block if session.client.deployment else 0

            count, raw_seconds = baseline(url, client, addresses, start, head)
            settings = Settings(
                rpc_urls=[url],
                confirmations=0,
                listener_batch_blocks=BATCH,
                listener_poll_interval=0.05,
                contract_addresses_path=record,
            )
            listener = Listener.build(settings, app=celery_app(server.url), redis_client=client)
            began = time.perf_counter()
            while listener.step().advanced:
                pass
            ours = time.perf_counter() - began

            polled = head_latency(listener, session, client, args.samples)
            listener.stop_event.clear()
            listener.ws_url = url.replace("http", "ws")
            woken = head_latency(listener, session, client, args.samples)
    finally:
        server.stop()

    raw_rate, our_rate = count / raw_seconds, count / ours
    print(f"backfill of {count} events over {head - start + 1} blocks")
    print(f"{'measurement':<46}{'events/s':>10}{'ratio':>8}")
    print(f"{'raw eth_getLogs + pipelined XADD (baseline)':<46}{raw_rate:>10.0f}{1.0:>8.2f}")
    print(f"{'listener backfill (decode, verify, dispatch)':<46}{our_rate:>10.0f}{our_rate / raw_rate:>8.2f}")
    for label, latencies in (("HTTP poll every 50 ms", polled), ("WebSocket newHeads wake-up", woken)):
        q = statistics.quantiles(latencies, n=100)
        print(
            f"head latency, tx sent (automined) -> work in Redis, {label}: "
            f"p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms ({len(latencies)} samples)"
        )


if __name__ == "__main__":
    main()
