"""Agent-to-agent messages through MessageHub, encrypted to the recipient (ECIES on secp256k1, eciespy).

Chain events are public, so a payload is sealed with the recipient's published public key: an ephemeral
key, HKDF, AES-256-GCM (eciespy's defaults); only the recipient's private key opens it, and the GCM tag
makes any tampering fail loudly instead of yielding garbage. The published key is the agent's own account
key: nothing more to keep safe, and only the agent itself can publish it (``setEncryptionKey`` checks the
sender), so a reader can trust the key it finds on chain.

Reading comes from one of two places: the fleet's inbox in Redis (the listener hands every MessageSent to
the recipient's queue, ``workers.tasks.deliver_message`` files it), or straight from the chain's logs.
A message that does not open (plaintext, another recipient's key, tampered) is reported, never dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import ecies
import redis
from eth_account.signers.local import LocalAccount
from eth_keys import keys
from web3 import Web3
from web3.logs import DISCARD

from agentfleet.chain.session import ChainSession
from agentfleet.protocol import keys as redis_keys
from agentfleet.protocol.limits import MAX_PAYLOAD_BYTES, MAX_TOPIC_BYTES

ECIES_OVERHEAD = 65 + 16 + 16  # ephemeral public key, nonce, GCM tag
UNCOMPRESSED = 0x04  # the first byte of the ephemeral key as ``seal`` writes it (eciespy's default)
MAX_TEXT_BYTES = MAX_PAYLOAD_BYTES - ECIES_OVERHEAD


class MessagingError(ValueError):
    """A message that cannot be sent as asked (no key published, too long, unknown recipient)."""


@dataclass(frozen=True)
class Message:
    message_id: int
    sender: str
    topic: str
    task_id: int
    text: str | None  # None when it did not open; ``error`` says why
    error: str | None = None


def public_key(account: LocalAccount) -> bytes:
    """The 64-byte uncompressed secp256k1 public key of an account (what ``setEncryptionKey`` stores)."""
    return keys.PrivateKey(bytes(account.key)).public_key.to_bytes()


def publish_key(session: ChainSession, account: LocalAccount) -> bool:
    """Publish the agent's key unless the chain already has it; True when a transaction was sent."""
    key = public_key(account)
    if bytes(session.messages.encryption_key_of(account.address)) == key:
        return False
    session.messages.set_encryption_key(account, key)
    return True


def seal(recipient_key: bytes, text: str) -> bytes:
    data = text.encode("utf-8")
    if not data:
        raise MessagingError("empty message")
    if len(data) > MAX_TEXT_BYTES:
        raise MessagingError(f"message is {len(data)} bytes; at most {MAX_TEXT_BYTES} fit in one payload")
    return ecies.encrypt(recipient_key, data)


def open_payload(account: LocalAccount, payload: bytes) -> str:
    """The plaintext, or ValueError if the payload was not sealed to this account (or was altered).

    The ephemeral key's first byte is checked here: secp256k1 also parses the "hybrid" prefixes 0x06/0x07 as
    the same point, so a payload whose first byte was flipped from 0x04 would otherwise still open (half of
    the time, by the key's parity; found by the property test)."""
    if not payload or payload[0] != UNCOMPRESSED:
        raise ValueError("cannot decrypt (not an uncompressed ephemeral key)")
    try:
        return ecies.decrypt(bytes(account.key), payload).decode("utf-8")
    except Exception as exc:  # eciespy raises ValueError/TypeError; bad UTF-8 raises UnicodeDecodeError
        raise ValueError(f"cannot decrypt ({type(exc).__name__})") from None


def send(session: ChainSession, sender: LocalAccount, to: str, text: str, *, topic: str = "", task_id: int = 0) -> int:
    """Seal ``text`` to ``to``'s published key and send it; returns the message id."""
    if not Web3.is_address(to):
        raise MessagingError(f"not an address: {to!r}")
    to = Web3.to_checksum_address(to)
    if len(topic.encode()) > MAX_TOPIC_BYTES:
        raise MessagingError(f"topic is longer than {MAX_TOPIC_BYTES} bytes")
    if not session.registry.is_registered(sender.address):
        raise MessagingError(f"the sender {sender.address} is not a registered agent")
    if not session.registry.is_registered(to):
        raise MessagingError(f"{to} is not a registered agent")
    recipient_key = bytes(session.messages.encryption_key_of(to))
    if not recipient_key:
        raise MessagingError(f"{to} has published no encryption key: nothing can be sent to it privately")
    payload = seal(recipient_key, text)
    receipt = session.messages.send_message(sender, to, topic, payload, task_id)
    events = session.messages.contract.events.MessageSent().process_receipt(receipt, errors=DISCARD)
    return int(events[0]["args"]["messageId"])


def _message(account: LocalAccount, message_id: Any, sender: Any, topic: Any, task_id: Any, payload: bytes) -> Message:
    try:
        return Message(
            int(message_id), str(sender), str(topic or ""), int(task_id or 0), open_payload(account, payload)
        )
    except ValueError as exc:
        return Message(int(message_id), str(sender), str(topic or ""), int(task_id or 0), None, str(exc))


def read_inbox(client: redis.Redis, account: LocalAccount) -> list[Message]:
    """Messages the fleet delivered to this agent's inbox (Redis), oldest first."""
    out = []
    for raw in client.lrange(redis_keys.inbox(account.address), 0, -1):
        entry = json.loads(raw)
        try:
            payload = bytes.fromhex(str(entry.get("payload") or "0x").removeprefix("0x"))
        except ValueError:
            payload = b""
        out.append(
            _message(
                account,
                entry.get("message_id") or 0,
                entry.get("from"),
                entry.get("topic"),
                entry.get("task_id"),
                payload,
            )
        )
    return out


def read_chain(session: ChainSession, account: LocalAccount, *, from_block: int = 0) -> list[Message]:
    """Messages to this agent straight from MessageHub's logs (no fleet needed), oldest first."""
    logs = session.messages.contract.events.MessageSent().get_logs(
        from_block=from_block, argument_filters={"to": account.address}
    )
    return [
        _message(
            account,
            e["args"]["messageId"],
            e["args"]["from"],
            e["args"]["topic"],
            e["args"]["taskId"],
            bytes(e["args"]["payload"]),
        )
        for e in logs
    ]
