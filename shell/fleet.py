"""The fleet's agents on a chain: registering them (idempotent, on chain and in the fleet directory),
making a fresh local chain ready for them, and example tasks they can do."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from web3 import Web3

from agentfleet.chain.deploy import deploy_all
from agentfleet.chain.local import chain_now, fund
from agentfleet.chain.market import TaskSpec, post_task
from agentfleet.chain.session import ChainSession
from agentfleet.directory import AgentDirectory, FleetAgent
from agentfleet.messaging import publish_key
from agentfleet.profiles import AGENT_TYPES, AgentDefinition
from agentfleet.protocol.status import AuctionMode
from agentfleet.settings import AuctionModeChoice

ETH = 10**18


def register_fleet(
    session: ChainSession, directory: AgentDirectory, definitions: Sequence[AgentDefinition]
) -> list[FleetAgent]:
    """Agent i of ``definitions`` acts with HD key ``agent_index_offset + i``. Registering twice is a no-op
    on chain (``isRegistered`` is checked first, the encryption key is published only if missing) and
    rewrites the same directory entry."""
    members = []
    for number, definition in enumerate(definitions):
        account = session.agent(number)
        if not session.registry.is_registered(account.address):
            session.registry.register(account, definition.name, definition.capabilities, definition.weights or [])
        publish_key(session, account)  # so other agents can send it encrypted messages
        chain_agent = session.registry.get_agent(account.address)
        member = FleetAgent(
            address=account.address,
            name=definition.name,
            profile=definition.queue,
            capabilities=list(chain_agent.capabilities),
            active=bool(chain_agent.active),
            hd_index=session.settings.agent_index_offset + number,
            learning_profile=definition.profile,
            weights=[int(w) for w in chain_agent.weights],
            reputation=int(chain_agent.reputation),
        )
        directory.put(member)
        members.append(member)
    return members


def bootstrap_local_fleet(
    session: ChainSession, directory: AgentDirectory, definitions: Sequence[AgentDefinition], *, record_path: Path
) -> list[FleetAgent]:
    """A fresh local chain made ready (what the demo and ``agentfleet up`` start from): the deployer,
    requester, evaluator and agents funded, the contracts deployed (record at ``record_path``), the agents
    registered."""
    w3 = session.client.w3
    for account in (session.deployer, session.requester, session.evaluator):
        fund(w3, account.address, 10_000 * ETH)
    for number in range(len(definitions)):
        fund(w3, session.agent(number).address, 100 * ETH)
    deploy_all(session.client, session.deployer, record_path=record_path)
    session.reset_contracts()
    return register_fleet(session, directory, definitions)


def create_example_tasks(
    session: ChainSession,
    rng: random.Random,
    count: int,
    *,
    window: int,
    reward_eth: float | None = None,
    tag_counts: Sequence[int] = (1, 2),
    mode: AuctionModeChoice = "mixed",
) -> list[int]:
    """``count`` tasks the agent types can do (tags drawn from their capabilities), each escrowing
    ``reward_eth`` (None: a random 0.5..2 ETH), bidding open for ``window`` seconds of chain time, in
    ``mode`` ("mixed": open and sealed auctions alternate, starting with open)."""
    capabilities = [c for agent in AGENT_TYPES for c in agent.capabilities]
    deadline = chain_now(session.client.w3) + window
    ids = []
    for number in range(count):
        tags = rng.sample(capabilities, k=rng.choice(tag_counts))
        reward = reward_eth if reward_eth is not None else round(rng.uniform(0.5, 2.0), 2)
        spec = TaskSpec(
            f"Example task: deliver {' and '.join(tags)}",
            tuple(tags),
            Web3.to_wei(reward, "ether"),
            deadline,
            3600,
            session.evaluator.address,
            mode=auction_mode(mode, number),
        )
        ids.append(post_task(session, session.requester, spec))
    return ids


def auction_mode(choice: AuctionModeChoice, number: int) -> AuctionMode:
    """The mode of the ``number``-th task posted under ``choice``."""
    if choice == "mixed":
        return AuctionMode.OPEN if number % 2 == 0 else AuctionMode.SEALED
    return AuctionMode[choice.upper()]
