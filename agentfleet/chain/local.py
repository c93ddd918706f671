"""Helpers that only make sense on local development chains (anvil, in-process py-evm).

Funding keys and moving time are what a demo or a test needs and what a public chain must never offer,
so they live apart from the client.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from web3 import EthereumTesterProvider, Web3
from web3.types import RPCEndpoint, Wei

from agentfleet.chain.connect import is_inprocess
from agentfleet.chain.errors import ChainError

LOCAL_CHAIN_IDS = {31337, 1337, 131277322940537}


def rpc(w3: Web3, method: str, params: list[Any]) -> Any:
    """A raw JSON-RPC call (anvil_* and evm_* methods web3 has no API for)."""
    return w3.provider.make_request(RPCEndpoint(method), params)


def _tester(w3: Web3) -> Any:
    """The in-process chain's EthereumTester (time travel, mining)."""
    return cast(EthereumTesterProvider, w3.provider).ethereum_tester


def require_local(w3: Web3) -> None:
    if w3.eth.chain_id not in LOCAL_CHAIN_IDS:
        raise ChainError(f"chain {w3.eth.chain_id} is not a local development chain")


def fund(w3: Web3, address: str, wei: int) -> None:
    """Give ``address`` a balance of at least ``wei`` (anvil_setBalance, or a transfer in-process)."""
    require_local(w3)
    address = Web3.to_checksum_address(address)
    balance = int(w3.eth.get_balance(address))
    if balance >= wei:
        return
    if is_inprocess(w3):
        rich = w3.eth.accounts[0]
        w3.eth.wait_for_transaction_receipt(
            w3.eth.send_transaction({"from": rich, "to": address, "value": Wei(wei - balance)})
        )
    else:
        rpc(w3, "anvil_setBalance", [address, hex(wei)])


def chain_now(w3: Web3, latest: Mapping[str, Any] | None = None) -> int:
    """The time the next block will carry: the pending block's timestamp. The latest block may be minutes
    old on an idle chain, so deadlines computed from it can already be in the past. ``latest``: the latest
    block when the caller has just read it (one RPC fewer)."""
    if latest is None:
        latest = w3.eth.get_block("latest")
    return max(int(latest["timestamp"]), int(w3.eth.get_block("pending")["timestamp"]))


def advance_time(w3: Web3, seconds: int) -> int:
    """Move the chain's clock forward and mine a block; returns the new block timestamp."""
    require_local(w3)
    if is_inprocess(w3):
        now = chain_now(w3)  # the pending block can be ahead of the latest (after a snapshot revert)
        tester = _tester(w3)
        tester.time_travel(now + seconds)
        tester.mine_blocks(1)
    else:
        rpc(w3, "evm_increaseTime", [seconds])
        rpc(w3, "evm_mine", [])
    return int(w3.eth.get_block("latest")["timestamp"])


def mine(w3: Web3, blocks: int = 1) -> None:
    require_local(w3)
    if is_inprocess(w3):
        _tester(w3).mine_blocks(blocks)
    else:
        rpc(w3, "anvil_mine", [hex(blocks)])
