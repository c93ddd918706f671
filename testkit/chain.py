"""Shared set-up for contract tests: a deployed market on either chain, agents registered."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import redis
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import MethodUnavailable
from web3.types import TxParams, TxReceipt

from agentfleet.bidding.sealed import BidBook, SealedBid, sign_bid
from agentfleet.chain import errors
from agentfleet.chain.connect import http_web3, inprocess_web3
from agentfleet.chain.deploy import deploy_all
from agentfleet.chain.local import chain_now, fund
from agentfleet.chain.market import TaskSpec, bids_placed, content_hash, post_task, tag_id
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
    return bids_placed(session, task_id)


# --- a contract payee that refuses the pushed payment ---------------------------------------------------
# Runtime: with calldata `target (20 bytes) ++ data`, call `target` with `data` and the call's value and
# bubble up the result (so it can act as a requester); without calldata (a plain ETH transfer) revert when
# it has less than 10000 gas, i.e. refuse the 2300-gas stipend of a push but accept a withdrawal.
REFUSER_RUNTIME = bytes.fromhex(
    " ".join(
        [
            "36 60 12 57",  # 0x00 CALLDATASIZE PUSH1 forward JUMPI
            "5a 61 2710 10 60 10 57",  # 0x04 GAS PUSH2 10000 LT PUSH1 accept JUMPI (10000 < gas: accept)
            "60 00 80 fd",  # 0x0c REVERT(0, 0): the stipend is not enough
            "5b 00",  # 0x10 accept: JUMPDEST STOP
            "5b 60 00 35 60 60 1c",  # 0x12 forward: JUMPDEST the target = CALLDATALOAD(0) >> 96
            "60 14 36 03 60 14 60 00 37",  # 0x19 CALLDATACOPY(0, 20, CALLDATASIZE - 20)
            "60 00 60 00 60 14 36 03 60 00 34 85 5a f1",  # 0x22 CALL(GAS, target, CALLVALUE, 0, size, 0, 0)
            "3d 60 00 60 00 3e",  # 0x30 RETURNDATACOPY(0, 0, RETURNDATASIZE)
            "60 3d 57",  # 0x36 PUSH1 ok JUMPI
            "3d 60 00 fd",  # 0x39 REVERT(0, RETURNDATASIZE): the call's error, unchanged
            "5b 3d 60 00 f3",  # 0x3d ok: JUMPDEST RETURN(0, RETURNDATASIZE)
        ]
    )
)
assert len(REFUSER_RUNTIME) == 0x42
# Init code: copy the runtime (after these 12 bytes) to memory and return it.
REFUSER_INIT = bytes.fromhex("6042600c60003960426000f3") + REFUSER_RUNTIME


class Refuser:
    """A deployed :data:`REFUSER_RUNTIME`; ``operator`` (an EOA) sends the transactions it forwards."""

    def __init__(self, session: ChainSession, operator: LocalAccount) -> None:
        self.session, self.operator = session, operator
        receipt = session.client.send(operator, {"data": REFUSER_INIT, "value": 0})
        assert receipt["status"] == 1
        self.address: str = str(receipt["contractAddress"])

    def call(self, fn: ContractFunction, *, value: int = 0) -> TxReceipt:
        """Send ``fn`` through the contract (so the contract is msg.sender); reverts raise by name."""
        w3 = self.session.client.w3
        data = bytes.fromhex(fn.address[2:]) + Web3.to_bytes(hexstr=fn._encode_transaction_data())
        tx = cast(TxParams, {"from": self.operator.address, "to": self.address, "value": value, "data": data})
        try:
            try:
                estimate = w3.eth.estimate_gas(tx, "pending")
            except MethodUnavailable:  # eth-tester estimates on the latest block only
                estimate = w3.eth.estimate_gas(tx)
        except Exception as exc:
            if errors.is_revert(exc):
                raise errors.translate(exc) from exc
            raise
        receipt = self.session.client.send(self.operator, {**tx, "gas": estimate * 3 // 2})
        if receipt["status"] != 1:  # a deadline passed between estimate and block: name the error
            try:
                w3.eth.call(tx, receipt["blockNumber"])
            except Exception as exc:
                if errors.is_revert(exc):
                    raise errors.translate(exc) from exc
            raise errors.TransactionReverted("forwarded call reverted")
        return receipt

    def create_task(
        self, *, reward: int, window: int = 300, mode: AuctionMode = AuctionMode.OPEN, duration: int = 1800
    ) -> int:
        """Post a task with this contract as the requester; returns its id."""
        s = self.session
        text = "A task posted by a contract"
        fn = s.tasks.contract.functions.createTask(
            content_hash(text),
            "",
            text,
            [tag_id("research")],
            now(s) + window,
            duration,
            s.evaluator.address,
            int(mode),
        )
        self.call(fn, value=reward)
        return s.tasks.task_count()
