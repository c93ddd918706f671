"""ChainSession: the fleet's identities and typed contracts on one connection.

Why: every process needs the same three things, a client, the keys derived from the mnemonic, and the
seven bound contracts. Building them in one place keeps the mnemonic inside this object (it is never
stored, only the derived accounts are) and makes "connect like the workers do" a single call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis
from eth_account.signers.local import LocalAccount
from web3 import Web3

from agentfleet.chain import bindings
from agentfleet.chain.artifacts import Deployment
from agentfleet.chain.client import ChainClient
from agentfleet.chain.connect import connect
from agentfleet.chain.keys import derive_account
from agentfleet.chain.nonces import NonceAllocator, RedisNonceAllocator
from agentfleet.settings import Settings

Bound = TypeVar("Bound", bound=bindings.BoundContract)


@dataclass
class ChainSession:
    """A connected client plus the fleet's accounts and bound contracts."""

    client: ChainClient
    settings: Settings
    _bound: dict[str, bindings.BoundContract] = field(default_factory=dict, repr=False)

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        w3: Web3 | None = None,
        redis_client: redis.Redis | None = None,
        deployment: Deployment | None = None,
    ) -> ChainSession:
        """Connect (``w3`` or the settings' RPC URLs), share nonces through Redis when given one."""
        w3 = w3 or connect(settings.rpc_urls, expected_chain_id=settings.chain_id)
        nonces: NonceAllocator | None = None
        if redis_client is not None:
            nonces = RedisNonceAllocator(redis_client, chain_id=w3.eth.chain_id)
        if deployment is None and settings.contract_addresses_path.exists():
            deployment = Deployment.load(settings.contract_addresses_path)
        client = ChainClient(
            w3,
            deployment=deployment,
            nonces=nonces,
            gas_multiplier=settings.gas_limit_multiplier,
            tx_timeout=settings.tx_timeout,
        )
        return cls(client=client, settings=settings)

    # --- identities -----------------------------------------------------------------------------------
    def account(self, index: int) -> LocalAccount:
        return derive_account(self.settings.mnemonic.get_secret_value(), index)

    @property
    def deployer(self) -> LocalAccount:
        return self.account(self.settings.deployer_index)

    @property
    def requester(self) -> LocalAccount:
        return self.account(self.settings.requester_index)

    @property
    def evaluator(self) -> LocalAccount:
        return self.account(self.settings.evaluator_index)

    def agent(self, number: int) -> LocalAccount:
        """Agent ``number`` (0-based) of the fleet."""
        return self.account(self.settings.agent_index_offset + number)

    # --- contracts ------------------------------------------------------------------------------------
    def _get(self, cls: type[Bound]) -> Bound:
        bound = self._bound.get(cls.NAME)
        if not isinstance(bound, cls):
            bound = self._bound[cls.NAME] = cls(self.client)
        return bound

    def reset_contracts(self) -> None:
        """Forget bound contracts (after a new deployment)."""
        self._bound.clear()

    @property
    def registry(self) -> bindings.AgentRegistry:
        return self._get(bindings.AgentRegistry)

    @property
    def tasks(self) -> bindings.TaskManager:
        return self._get(bindings.TaskManager)

    @property
    def auction(self) -> bindings.BidAuction:
        return self._get(bindings.BidAuction)

    @property
    def incentives(self) -> bindings.IncentiveEngine:
        return self._get(bindings.IncentiveEngine)

    @property
    def marketplace(self) -> bindings.TaskMarketplace:
        return self._get(bindings.TaskMarketplace)

    @property
    def messages(self) -> bindings.MessageHub:
        return self._get(bindings.MessageHub)

    @property
    def actions(self) -> bindings.ActionLogger:
        return self._get(bindings.ActionLogger)


def capability_weights(chain_agent: Any) -> dict[str, int]:
    """An AgentRegistry agent's capabilities with their weights (0..100), as one mapping."""
    return dict(zip(chain_agent.capabilities, chain_agent.weights, strict=False))
