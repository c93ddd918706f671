"""Benchmark: listener backfill events/s against raw eth_getLogs + pipelined Redis writes, and head latency.

Run: ``.venv/bin/python -m bench.listener [--events 2000] [--samples 50]``. One fresh anvil and one
redis-server serve both sides in the same run, so the printed ratio cancels machine noise.

- baseline: eth_getLogs over the same block range in the same batch size, then one pipelined XADD per
  log (what a listener without decoding, confirmation checks, routing or idempotency would cost).
- baseline 2 (issue 13): eth_getLogs over the same range plus a bare Celery publish of the same messages
  (one consider per TaskCreated, same queue kind, same payload shape, one producer): what any listener that
  feeds Celery pays. The listener's ratio against it is what its own work costs (must be >= 0.7).
- listener: a cold ``Listener`` backfilling the same range: decode, verify block hashes, route, idempotent
  Celery sends (one MGET per batch, one pipeline per event), stream entries, checkpoint.
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
from typing import Any

import redis

from agentfleet.chain.session import ChainSession
from agentfleet.protocol import routing
from agentfleet.protocol.routing import agent_queue
from agentfleet.settings import Settings
from chain_listener.listener import Listener
from testkit.chain import deployed_market
from testkit.listener import add_fleet_agents, celery_app, emit_tasks

BATCH = 500
RESEARCH = agent_queue("research")
BASELINE_QUEUE = agent_queue("baseline")  # nobody consumes it: the bare publishes land here


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


def baseline_publish(
    url: str, app: Any, session: ChainSession, addresses: list[str], start: int, end: int
) -> tuple[int, float]:
    """Raw eth_getLogs plus bare Celery publishing of the same messages the listener sends for these logs (one
    consider per TaskCreated with the decoded event, to a queue of the same kind), prepared before the clock
    starts: what any Celery-fed listener pays, without decoding, routing, idempotency keys or the stream."""
    from web3 import Web3

    from chain_listener.events import EventDecoder

    w3 = Web3(Web3.HTTPProvider(url))
    decoder = EventDecoder(session.client.deployment.contracts if session.client.deployment else {})
    agent = session.agent(0).address
    messages = {}
    for entry in w3.eth.get_logs({"fromBlock": start, "toBlock": end, "address": addresses}):
        event = decoder.decode(entry)
        if event.name == "TaskCreated":
            kwargs = {"agents": [agent], "task_id": event.args["taskId"], "event": event.to_message()}
            messages[event.id] = (f"{event.id}:consider", kwargs)
    began = time.perf_counter()
    total = 0
    with app.producer_or_acquire() as producer:
        for first in range(start, end + 1, BATCH):
            logs = w3.eth.get_logs({"fromBlock": first, "toBlock": min(end, first + BATCH - 1), "address": addresses})
            for entry in logs:
                found = messages.get(f"{entry['transactionHash'].to_0x_hex()}:{entry['logIndex']}")
                if found is None:
                    continue
                app.send_task(
                    routing.CONSIDER,
                    kwargs=found[1],
                    queue=BASELINE_QUEUE,
                    task_id=found[0],
                    producer=producer,
                    ignore_result=True,
                )
                total += 1
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
            published, publish_seconds = baseline_publish(url, celery_app(server.url), session, addresses, start, head)
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
    publish_rate = published / publish_seconds
    print(f"{'raw eth_getLogs + bare Celery publish (baseline)':<46}{publish_rate:>10.0f}{1.0:>8.2f}")
    print(f"{'listener backfill against it':<46}{our_rate:>10.0f}{our_rate / publish_rate:>8.2f}")
    for label, latencies in (("HTTP poll every 50 ms", polled), ("WebSocket newHeads wake-up", woken)):
        q = statistics.quantiles(latencies, n=100)
        print(
            f"head latency, tx sent (automined) -> work in Redis, {label}: "
            f"p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms ({len(latencies)} samples)"
        )


if __name__ == "__main__":
    main()
