"""Helpers that only make sense on local development chains (anvil, in-process py-evm).

Funding keys and moving time are what a demo or a test needs and what a public chain must never offer,
so they live apart from the client.
"""

from __future__ import annotations

from web3 import Web3
from web3.types import Wei

from agentfleet.chain.connect import is_inprocess
from agentfleet.chain.errors import ChainError

LOCAL_CHAIN_IDS = {31337, 1337, 131277322940537}


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
        w3.provider.make_request("anvil_setBalance", [address, hex(wei)])  # type: ignore[arg-type]


def chain_now(w3: Web3) -> int:
    """The time the next block will carry: the pending block's timestamp. The latest block may be minutes
    old on an idle chain, so deadlines computed from it can already be in the past."""
    return max(int(w3.eth.get_block(tag)["timestamp"]) for tag in ("latest", "pending"))


def advance_time(w3: Web3, seconds: int) -> int:
    """Move the chain's clock forward and mine a block; returns the new block timestamp."""
    require_local(w3)
    if is_inprocess(w3):
        now = chain_now(w3)  # the pending block can be ahead of the latest (after a snapshot revert)
        tester = w3.provider.ethereum_tester  # type: ignore[attr-defined]
        tester.time_travel(now + seconds)
        tester.mine_blocks(1)
    else:
        w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    return int(w3.eth.get_block("latest")["timestamp"])


def mine(w3: Web3, blocks: int = 1) -> None:
    require_local(w3)
    if is_inprocess(w3):
        w3.provider.ethereum_tester.mine_blocks(blocks)  # type: ignore[attr-defined]
    else:
        w3.provider.make_request("anvil_mine", [hex(blocks)])  # type: ignore[arg-type]
