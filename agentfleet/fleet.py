"""Registering the fleet's agents: on chain (idempotent) and in the fleet directory."""

from __future__ import annotations

from collections.abc import Sequence

from agentfleet.chain.session import ChainSession
from agentfleet.directory import AgentDirectory, FleetAgent
from agentfleet.messaging import publish_key
from agentfleet.profiles import AgentDefinition


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
        )
        directory.put(member)
        members.append(member)
    return members
