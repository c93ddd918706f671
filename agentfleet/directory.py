"""The fleet's agent directory in Redis: which on-chain agents this fleet acts for, and on which queue.

Why Redis and not the chain: the profile queue (``agent.research`` ...) is a fleet-side decision, not
contract state. Registration (workers) writes an entry; the listener keeps capabilities in step with
``AgentRegistered``/``AgentUpdated`` events and reads the directory to decide who should consider a task.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import redis

from agentfleet.protocol import keys, routing

DIRECTORY_KEY = keys.DIRECTORY


@dataclass
class FleetAgent:
    address: str
    name: str
    profile: str  # capability profile: selects the queue agent.<profile>
    capabilities: list[str] = field(default_factory=list)
    active: bool = True
    hd_index: int | None = None  # which key of the mnemonic acts for it (never the key itself)
    learning_profile: str = "balanced"

    @property
    def queue(self) -> str:
        return routing.agent_queue(self.profile)

    def serves(self, tags: list[str]) -> bool:
        """An agent may consider a task if it is active and shares a capability with the task's tags."""
        if not self.active:
            return False
        if not tags:
            return True
        wanted = {t.lower() for t in tags}
        return any(c.lower() in wanted for c in self.capabilities)


class AgentDirectory:
    def __init__(self, client: redis.Redis, *, key: str = DIRECTORY_KEY) -> None:
        self.redis = client
        self.key = key

    def put(self, agent: FleetAgent) -> None:
        self.redis.hset(self.key, agent.address.lower(), json.dumps(asdict(agent)))

    def get(self, address: str) -> FleetAgent | None:
        raw = self.redis.hget(self.key, address.lower())
        return FleetAgent(**json.loads(raw)) if raw else None

    def all(self) -> list[FleetAgent]:
        return [FleetAgent(**json.loads(v)) for v in self.redis.hgetall(self.key).values()]

    def update(self, address: str, *, capabilities: list[str] | None = None, active: bool | None = None) -> None:
        """Apply an on-chain change to a fleet agent (ignored for agents this fleet does not run)."""
        agent = self.get(address)
        if agent is None:
            return
        if capabilities is not None:
            agent.capabilities = list(capabilities)
        if active is not None:
            agent.active = active
        self.put(agent)

    def eligible(self, tags: list[str]) -> list[FleetAgent]:
        return sorted((a for a in self.all() if a.serves(tags)), key=lambda a: a.address)
