"""Shared pieces of the listener tests: fast event emission, a Celery app on the test Redis, queue reads."""

from __future__ import annotations

import base64
import json
from typing import Any

import redis
from celery import Celery

from agentfleet.chain.market import content_hash, tag_id
from agentfleet.chain.session import ChainSession
from agentfleet.directory import AgentDirectory, FleetAgent
from agentfleet.protocol import keys
from agentfleet.protocol.status import AuctionMode
from testkit.chain import ETH, now


def celery_app(redis_url: str) -> Celery:
    app = Celery("agentfleet-test")
    app.config_from_object("agentfleet.protocol.celeryconfig")
    app.conf.broker_url = redis_url
    app.conf.result_backend = redis_url
    return app


def add_fleet_agents(session: ChainSession, client: redis.Redis, profiles: list[str]) -> list[FleetAgent]:
    """Make agents 0..n-1 (registered on chain by deployed_market) members of this fleet."""
    directory = AgentDirectory(client)
    agents = []
    for number, profile in enumerate(profiles):
        agent = session.registry.get_agent(session.agent(number).address)
        entry = FleetAgent(session.agent(number).address, agent.name, profile, list(agent.capabilities))
        directory.put(entry)
        agents.append(entry)
    return agents


def emit_tasks(
    session: ChainSession, count: int, *, tags: list[str] | None = None, window: int = 3600, wait: bool = True
) -> list[str]:
    """Send ``count`` createTask transactions fast (explicit nonces, no wait between); returns tx hashes."""
    w3 = session.client.w3
    requester = session.requester
    fn = session.tasks.contract.functions.createTask(
        content_hash("bulk task"),
        "",
        "bulk task",
        [tag_id(t) for t in tags or ["research"]],
        now(session) + window,
        3600,
        session.evaluator.address,
        int(AuctionMode.OPEN),
    )
    tx = {"from": requester.address, "to": fn.address, "data": fn._encode_transaction_data(), "value": ETH // 100}
    gas = int(w3.eth.estimate_gas(tx) * 1.5)  # type: ignore[arg-type]
    base = int(w3.eth.get_block("latest")["baseFeePerGas"])
    nonce = w3.eth.get_transaction_count(requester.address, "pending")
    session.client.nonces.forget(requester.address)
    hashes = []
    for i in range(count):
        signed = requester.sign_transaction(
            {
                **tx,
                "gas": gas,
                "nonce": nonce + i,
                "chainId": w3.eth.chain_id,
                "maxFeePerGas": 4 * base + 10**9,
                "maxPriorityFeePerGas": 10**9,
            }
        )
        hashes.append(w3.eth.send_raw_transaction(signed.raw_transaction).to_0x_hex())
    for tx_hash in hashes[-1:] if wait else []:
        assert w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)["status"] == 1
    return hashes


def queued(client: redis.Redis, queue: str) -> list[dict[str, Any]]:
    """Celery messages waiting in a Redis queue, oldest first: headers (task, id) and kwargs."""
    out = []
    for raw in reversed(client.lrange(queue, 0, -1)):
        message = json.loads(raw)
        raw_body = message["body"]
        if message["properties"].get("body_encoding") == "base64":  # kombu's Redis transport: always, today
            raw_body = base64.b64decode(raw_body)
        body = json.loads(raw_body)
        out.append({"task": message["headers"]["task"], "id": message["headers"]["id"], "kwargs": body[1]})
    return out


def stream(client: redis.Redis, key: str = keys.EVENTS) -> list[dict[str, str]]:
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in client.xrange(key)]
