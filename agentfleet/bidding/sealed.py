"""Sealed bids: EIP-712 signatures instead of bid transactions, kept in the task's bid book.

Why: in a sealed auction a losing bidder sends nothing. An agent signs ``Bid(taskId, amount, agent,
expiry)`` under the BidAuction's domain (name, version, chain id, contract address), so the signature is
worthless for any other task, chain or contract and after its expiry. The fleet's bid book is a Redis stream
per task (one bid per agent: the first one stands, like an open bid). After the deadline the requester (the
fleet's keeper) submits the book to ``finalizeSealed``; the contract checks every bid and assigns the best.
"""

from __future__ import annotations

import json
from typing import Any

import redis
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from pydantic import BaseModel, Field, ValidationError, field_validator
from web3 import Web3

from agentfleet.protocol import keys, limits

DOMAIN_NAME = "agentfleet BidAuction"  # BidAuction.NAME
DOMAIN_VERSION = "1"  # BidAuction.VERSION
BID_TYPES = {
    "Bid": [
        {"name": "taskId", "type": "uint256"},
        {"name": "amount", "type": "uint256"},
        {"name": "agent", "type": "address"},
        {"name": "expiry", "type": "uint64"},
    ]
}
BOOK_TTL = 7 * 24 * 3600  # seconds a bid book is kept after its last bid


class SealedBid(BaseModel):
    """One signed bid as it travels through the bid book."""

    task_id: int = Field(ge=1)
    agent: str
    amount: int = Field(gt=0, le=limits.MAX_REWARD)
    expiry: int = Field(gt=0, lt=2**64)
    signature: str  # 0x + 65 bytes (r, s, v)
    received_at: int = 0  # the chain's clock when the bid reached the book

    @field_validator("agent")
    @classmethod
    def _checksum(cls, value: str) -> str:
        if not Web3.is_address(value):
            raise ValueError(f"not an address: {value!r}")
        return Web3.to_checksum_address(value)

    def call_arg(self) -> tuple[str, int, int, bytes]:
        """The ``SignedBid`` tuple ``finalizeSealed`` takes."""
        return (self.agent, self.amount, self.expiry, bytes.fromhex(self.signature.removeprefix("0x")))


def _typed(chain_id: int, auction: str, task_id: int, amount: int, agent: str, expiry: int) -> Any:
    domain = {
        "name": DOMAIN_NAME,
        "version": DOMAIN_VERSION,
        "chainId": chain_id,
        "verifyingContract": Web3.to_checksum_address(auction),
    }
    message = {"taskId": task_id, "amount": amount, "agent": Web3.to_checksum_address(agent), "expiry": expiry}
    return encode_typed_data(domain_data=domain, message_types=BID_TYPES, message_data=message)


def sign_bid(
    account: LocalAccount, *, chain_id: int, auction: str, task_id: int, amount: int, expiry: int
) -> SealedBid:
    """Sign a sealed bid for ``task_id`` as ``account`` (no transaction, no gas)."""
    signed = account.sign_message(_typed(chain_id, auction, task_id, amount, account.address, expiry))
    return SealedBid(
        task_id=task_id, agent=account.address, amount=amount, expiry=expiry, signature=signed.signature.to_0x_hex()
    )


def signer_of(bid: SealedBid, *, chain_id: int, auction: str) -> str | None:
    """Who signed ``bid`` for this chain and auction (None for a malformed signature)."""
    try:
        return str(
            Account.recover_message(
                _typed(chain_id, auction, bid.task_id, bid.amount, bid.agent, bid.expiry), signature=bid.signature
            )
        )
    except Exception:  # eth_account raises several types for malformed signatures
        return None


# One bid per agent, atomically: append only when the agent has no entry in the book yet.
_PUBLISH = """
for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
  if entry[2][2] == ARGV[1] then return 0 end
end
redis.call('XADD', KEYS[1], '*', 'agent', ARGV[1], 'bid', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


class BidBook:
    """The fleet's bid book: one Redis stream per task (``keys.bid_book``), an entry per agent's signed bid
    in arrival order. Anyone with access to the fleet's Redis can read it (``XRANGE``); a requester outside
    the fleet collects signed bids any way it likes: the contract only needs the signatures."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._publish = client.register_script(_PUBLISH)

    def publish(self, bid: SealedBid) -> bool:
        """Add the agent's bid; False when the agent already has one in the book (the first one stands)."""
        added = self._publish(
            keys=[keys.bid_book(bid.task_id)], args=[bid.agent.lower(), bid.model_dump_json(), BOOK_TTL]
        )
        return bool(added)

    def get(self, task_id: int, agent: str) -> SealedBid | None:
        return next((bid for bid in self._entries(task_id) if bid.agent.lower() == agent.lower()), None)

    def bids(self, task_id: int) -> list[SealedBid]:
        """Every well-formed bid in the book, sorted by agent address (the order finalizeSealed takes)."""
        first: dict[str, SealedBid] = {}
        for bid in self._entries(task_id):
            first.setdefault(bid.agent.lower(), bid)
        return sorted(first.values(), key=lambda b: int(b.agent, 16))

    def agents(self, task_id: int) -> set[str]:
        """Who has a bid in the book (lower-case addresses)."""
        return {bid.agent.lower() for bid in self._entries(task_id)}

    def count(self, task_id: int) -> int:
        return int(self.redis.xlen(keys.bid_book(task_id)))

    def _entries(self, task_id: int) -> list[SealedBid]:
        entries = self.redis.xrange(keys.bid_book(task_id)) or []
        parsed = (self._parse(fields) for _id, fields in entries)
        return [bid for bid in parsed if bid is not None and bid.task_id == task_id]

    @staticmethod
    def _parse(fields: Any) -> SealedBid | None:
        try:
            raw = fields.get(b"bid", fields.get("bid"))
            return SealedBid.model_validate(json.loads(raw))
        except (ValueError, ValidationError, TypeError, AttributeError):
            return None  # a malformed entry is never submitted


def bids_seen(client: redis.Redis, task_id: int) -> int:
    """How many bids the fleet has seen on a task: open bids from BidPlaced events plus the sealed bid book."""
    pipe = client.pipeline()
    pipe.hlen(keys.listener_bids(task_id))
    pipe.xlen(keys.bid_book(task_id))
    return sum(int(n) for n in pipe.execute())
