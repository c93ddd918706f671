"""Shared set-up for contract tests: a deployed market on either chain, agents registered."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from agentfleet.bidding.sealed import BidBook, SealedBid, sign_bid
from agentfleet.chain.connect import http_web3, inprocess_web3
from agentfleet.chain.deploy import deploy_all
from agentfleet.chain.local import chain_now, fund
from agentfleet.chain.market import TaskSpec, post_task
from agentfleet.chain.session import ChainSession
from agentfleet.protocol.status import AuctionMode
from agentfleet.settings import Settings
from shell.services import AnvilNode

ETH = 10**18
AGENT_CAPS = (
    ("ResearchAgent", ["research", "writing"], [80, 70]),
    ("DevelopmentAgent", ["coding", "testing"], [85, 75]),
    ("AnalyticsAgent", ["research", "statistics"], [60, 90]),
)


@contextmanager
def deployed_market(kind: str, tmp: Path, *, register: int = 3) -> Iterator[ChainSession]:
    """A fresh chain of ``kind`` ('inprocess' or 'anvil') with the contracts deployed."""
    node = AnvilNode.start() if kind == "anvil" else None
    try:
        w3 = http_web3(node.url) if node else inprocess_web3()
        session = ChainSession.open(Settings(contract_addresses_path=tmp / "contract_addresses.json"), w3=w3)
        for account in (session.deployer, session.requester, session.evaluator):
            fund(w3, account.address, 1000 * ETH)
        for number in range(6):
            fund(w3, session.agent(number).address, 100 * ETH)
        deploy_all(session.client, session.deployer, record_path=session.settings.contract_addresses_path)
        session.reset_contracts()
        for number, (name, caps, weights) in enumerate(AGENT_CAPS[:register]):
            session.registry.register(session.agent(number), name, caps, weights)
        yield session
    finally:
        if node:
            node.stop()


def now(session: ChainSession) -> int:
    """The chain's clock (``chain_now``: the later of the latest and pending blocks)."""
    return chain_now(session.client.w3)


def clean_env() -> dict[str, str]:
    """This process's environment without agentfleet or OpenAI settings: a child starts from the defaults
    (offline provider) plus what the test sets."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AGENTFLEET_", "OPENAI_"))}


def fleet_env(session: ChainSession, redis_url: str | None = None, **settings: object) -> dict[str, str]:
    """A clean environment pointing a child process at this session's chain and deployment (and Redis);
    ``settings`` become AGENTFLEET_* variables (``confirmations=0`` -> ``AGENTFLEET_CONFIRMATIONS=0``)."""
    env = clean_env()
    env["AGENTFLEET_RPC_URLS"] = session.client.w3.provider.endpoint_uri  # type: ignore[attr-defined]
    env["AGENTFLEET_CONTRACT_ADDRESSES_PATH"] = str(session.settings.contract_addresses_path)
    if redis_url is not None:
        env["AGENTFLEET_REDIS_URL"] = redis_url
    settings = {"training_confirmations": 0, **settings}  # automine: no block comes after the last event
    env.update({f"AGENTFLEET_{name.upper()}": str(value) for name, value in settings.items()})
    return env


def create_task(
    session: ChainSession,
    *,
    reward: int = ETH,
    tags: list[str] | None = None,
    window: int = 300,
    mode: AuctionMode = AuctionMode.OPEN,
    text: str = "Write a literature review",
) -> int:
    """Post a task as the session's requester (evaluated by its evaluator); returns its id."""
    spec = TaskSpec(
        text,
        tuple(tags if tags is not None else ["research"]),
        reward,
        now(session) + window,
        3600,
        session.evaluator.address,
        mode=mode,
    )
    return post_task(session, session.requester, spec)


def sealed_bid(session: ChainSession, number: int, task_id: int, amount: int, *, expiry_in: int = 7200) -> SealedBid:
    """Agent ``number``'s signed sealed bid for ``task_id``, valid ``expiry_in`` seconds from now."""
    return sign_bid(
        session.agent(number),
        chain_id=session.client.chain_id,
        auction=session.auction.address,
        task_id=task_id,
        amount=amount,
        expiry=now(session) + expiry_in,
    )


def bids_on(session: ChainSession, task_id: int, client: redis.Redis | None = None) -> dict[str, int]:
    """Every bid on ``task_id``, agent (lower case) -> amount: from the BidPlaced logs (open auction) or, for
    a sealed auction, from the fleet's bid book in ``client``."""
    if AuctionMode(session.tasks.get_task(task_id).mode) == AuctionMode.SEALED:
        if client is None:
            raise ValueError("a sealed auction's bids are in the bid book: pass the Redis client")
        return {bid.agent.lower(): bid.amount for bid in BidBook(client).bids(task_id)}
    event = session.auction.contract.events.BidPlaced()
    logs = event.get_logs(from_block=0, argument_filters={"taskId": task_id})
    return {str(log["args"]["agent"]).lower(): int(log["args"]["amount"]) for log in logs}
