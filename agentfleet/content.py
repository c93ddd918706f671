"""Off-chain content, addressed by the hashes the chain holds: task texts and results.

Why: the contracts keep only hashes (task texts: keccak256 in the TaskCreated event; results: sha256 in the
ResultSubmitted event). The bytes live here, in Redis, and are returned only when they still match their
hash: a missing or altered entry reads as absent, never as trusted text.
"""

from __future__ import annotations

import hashlib

import redis
from redis.client import Pipeline
from web3 import Web3

from agentfleet.policy import MAX_RESULT_BYTES
from agentfleet.protocol import keys

TEXT_TTL = 90 * 24 * 3600  # seconds a task text is kept: far longer than any task's life


def _raw(value: object) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode()


class ResultStore:
    """Full results, content-addressed by sha256 (``keys.results``)."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def put(self, content: str) -> bytes:
        data = content.encode("utf-8")
        if len(data) > MAX_RESULT_BYTES:
            raise ValueError(f"result of {len(data)} bytes exceeds {MAX_RESULT_BYTES}")
        digest = hashlib.sha256(data).digest()
        self.redis.set(keys.results(digest.hex()), data)
        return digest

    def get(self, digest: bytes) -> str | None:
        raw = _raw(self.redis.get(keys.results(digest.hex())))
        if raw is None or hashlib.sha256(raw).digest() != digest:
            return None  # missing or tampered with: never trusted
        return raw.decode("utf-8")


class TaskTexts:
    """Task texts, content-addressed by keccak256 (``keys.task_text``), plus which hash each task id has
    (``keys.task_content``), as the listener and the requester saw them in TaskCreated."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def put(
        self, text: str, *, task_id: int | None = None, digest: bytes | None = None, pipe: Pipeline | None = None
    ) -> bytes:
        """Store ``text`` (and, with ``task_id``, the task's content hash); a ``digest`` given must match.
        With ``pipe`` the writes join that pipeline (the listener sends a batch's writes in one round trip)."""
        data = text.encode("utf-8")
        actual = bytes(Web3.keccak(data))
        if digest is not None and bytes(digest) != actual:
            raise ValueError("task text does not match its content hash")
        writes = pipe if pipe is not None else self.redis.pipeline()
        writes.set(keys.task_text(actual.hex()), data, ex=TEXT_TTL)
        if task_id is not None:
            writes.set(keys.task_content(task_id), actual.hex(), ex=TEXT_TTL)
        if pipe is None:
            writes.execute()
        return actual

    def remember(self, task_id: int, digest: bytes, *, pipe: Pipeline | None = None) -> None:
        """The task's content hash, when its text is not at hand (published by URI only)."""
        (pipe if pipe is not None else self.redis).set(keys.task_content(task_id), bytes(digest).hex(), ex=TEXT_TTL)

    def get(self, digest: bytes) -> str | None:
        raw = _raw(self.redis.get(keys.task_text(bytes(digest).hex())))
        if raw is None or bytes(Web3.keccak(raw)) != bytes(digest):
            return None
        return raw.decode("utf-8", errors="replace")

    def digest_of(self, task_id: int) -> bytes | None:
        value = _raw(self.redis.get(keys.task_content(task_id)))
        return bytes.fromhex(value.decode()) if value else None

    def of_task(self, task_id: int) -> str | None:
        digest = self.digest_of(task_id)
        return self.get(digest) if digest is not None else None
