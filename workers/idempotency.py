"""Exactly-once effects on top of at-least-once delivery: done markers and in-progress claims in Redis.

A handler first asks ``done(key)``; then takes ``claim(key)`` (SET NX with a TTL, so a dead worker's claim
expires) and, after its effect is on chain, ``finish(key, outcome)``. Redelivered or duplicated messages
find the done marker; a message that arrives while another worker holds the claim is retried later; and
every handler also checks chain state, which covers a crash between the transaction and ``finish``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import redis

PREFIX = "agentfleet:work"
DONE_TTL = 30 * 24 * 3600  # seconds


class Claimed(Exception):
    """Another worker is processing this key right now."""


class WorkLedger:
    def __init__(self, client: redis.Redis, *, claim_ttl: int = 300) -> None:
        self.redis = client
        self.claim_ttl = claim_ttl

    def done(self, key: str) -> dict[str, Any] | None:
        raw = self.redis.get(f"{PREFIX}:done:{key}")
        return json.loads(raw) if raw else None

    def claim(self, key: str, *, steal: bool = False) -> str:
        """Take the in-progress claim. ``steal`` is for a redelivered message: the broker only redelivers
        when the worker that had it died (or outlived the visibility timeout), so its claim is void."""
        token = uuid.uuid4().hex
        if not self.redis.set(f"{PREFIX}:claim:{key}", token, nx=not steal, ex=self.claim_ttl):
            raise Claimed(key)
        return token

    def release(self, key: str, token: str) -> None:
        claim_key = f"{PREFIX}:claim:{key}"
        if self.redis.get(claim_key) == token.encode():
            self.redis.delete(claim_key)

    def finish(self, key: str, outcome: dict[str, Any]) -> dict[str, Any]:
        self.redis.set(f"{PREFIX}:done:{key}", json.dumps(outcome), ex=DONE_TTL)
        return outcome
