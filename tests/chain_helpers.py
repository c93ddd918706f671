"""Shared set-up for contract tests: a deployed market on either chain, agents registered."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agentfleet.chain.connect import http_web3, inprocess_web3
from agentfleet.chain.deploy import deploy_all
from agentfleet.chain.local import fund
from agentfleet.chain.session import ChainSession
from agentfleet.services import AnvilNode
from agentfleet.settings import Settings

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
    """The chain's clock: the later of the latest and pending blocks (they differ after a revert)."""
    w3 = session.client.w3
    return max(int(w3.eth.get_block(tag)["timestamp"]) for tag in ("latest", "pending"))


def create_task(session: ChainSession, *, reward: int = ETH, tags: list[str] | None = None, window: int = 300) -> int:
    session.tasks.create_task(
        session.requester,
        "Write a literature review",
        tags if tags is not None else ["research"],
        now(session) + window,
        3600,
        session.evaluator.address,
        value=reward,
    )
    return session.tasks.task_count()
