"""The fleet's agent directory in Redis: which on-chain agents this fleet acts for, and on which queue.

Why Redis and not the chain: the profile queue (``agent.research`` ...) is a fleet-side decision, not
contract state. Registration (workers) writes an entry; the listener keeps capabilities, their weights and the
reputation in step with the registry's events (``AgentRegistered``/``AgentUpdated``/``CapabilityWeightChanged``/
``ReputationChanged``) and reads the directory to decide who should consider a task. Workers read an agent's
weights and reputation here too, so deciding on a new task costs no chain read per agent (issue 13); an entry
written before this existed has no weights and the worker reads the chain instead.
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
    weights: list[int] = field(default_factory=list)  # capability weights (0..100), in ``capabilities`` order
    reputation: int | None = None  # on-chain reputation as of the listener's last event (None: unknown)

    @property
    def queue(self) -> str:
        return routing.agent_queue(self.profile)

    def standing(self) -> tuple[dict[str, int], int] | None:
        """(capability weights, reputation) as the events left them; None when not known in full."""
        if self.reputation is None or len(self.weights) != len(self.capabilities):
            return None
        return dict(zip(self.capabilities, self.weights, strict=True)), self.reputation

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

    def update(
        self,
        address: str,
        *,
        capabilities: list[str] | None = None,
        weights: list[int] | None = None,
        active: bool | None = None,
        reputation: int | None = None,
    ) -> None:
        """Apply an on-chain change to a fleet agent (ignored for agents this fleet does not run)."""
        agent = self.get(address)
        if agent is None:
            return
        if capabilities is not None:
            agent.capabilities = list(capabilities)
            agent.weights = list(weights) if weights is not None and len(weights) == len(capabilities) else []
        if active is not None:
            agent.active = active
        if reputation is not None:
            agent.reputation = reputation
        self.put(agent)

    def set_weight(self, address: str, capability: str, weight: int) -> None:
        """One capability's new weight (``CapabilityWeightChanged``); unknown capability: weights unknown."""
        agent = self.get(address)
        if agent is None:
            return
        names = [c.lower() for c in agent.capabilities]
        if capability.lower() in names and len(agent.weights) == len(names):
            agent.weights[names.index(capability.lower())] = weight
        else:
            agent.weights = []  # not what we hold: the worker reads the chain until the next full event
        self.put(agent)

    def eligible(self, tags: list[str]) -> list[FleetAgent]:
        return sorted((a for a in self.all() if a.serves(tags)), key=lambda a: a.address)
