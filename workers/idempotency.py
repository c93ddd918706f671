"""Exactly-once effects on top of at-least-once delivery: heartbeat claims and done records in Redis.

The chain is the truth; Redis only remembers work in progress and what a handler concluded.

- ``hold(key)`` takes the in-progress claim (SET NX with a short TTL) and renews it from a daemon thread
  every third of the TTL while the work runs. A live claim therefore means a live holder: a message that
  arrives meanwhile (a duplicate, a redelivery after the visibility timeout of a long task) is told
  :class:`Claimed` and backs off. A SIGKILLed holder stops renewing and its claim expires within the TTL,
  so redelivered work (or the reconciler) takes over without waiting for minutes.
- ``done(key)`` / ``finish(key, outcome)`` keep what a handler concluded. A done record is a cache: callers
  honour it only where the chain still agrees (a reorg can remove the effect it describes).
- ``attempts(key)`` counts tries that ended without an effect (an LLM answer that never validated), so a
  bounded number of them leads to a decision instead of a loop.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import redis

from agentfleet.protocol import keys

PREFIX = keys.WORK
DONE_TTL = 30 * 24 * 3600  # seconds

# Renew only our own claim (compare-and-expire), so a claim that expired and was taken over is left alone.
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class Claimed(Exception):
    """Another live worker is processing this key right now."""


class WorkLedger:
    def __init__(self, client: redis.Redis, *, claim_ttl: int = 30) -> None:
        self.redis = client
        self.claim_ttl = claim_ttl

    def done(self, key: str) -> dict[str, Any] | None:
        raw = self.redis.get(f"{PREFIX}:done:{key}")
        return json.loads(raw) if raw else None

    def finish(self, key: str, outcome: dict[str, Any]) -> dict[str, Any]:
        self.redis.set(f"{PREFIX}:done:{key}", json.dumps(outcome), ex=DONE_TTL)
        return outcome

    def forget(self, key: str) -> None:
        self.redis.delete(f"{PREFIX}:done:{key}")

    def claim_ttl_left(self, key: str) -> int:
        """Seconds until the current claim on ``key`` expires (0 if none)."""
        return max(0, int(self.redis.ttl(f"{PREFIX}:claim:{key}")))

    @contextmanager
    def hold(self, key: str) -> Iterator[str]:
        """Hold the claim on ``key`` for the duration of the block, renewing it in the background."""
        claim_key = f"{PREFIX}:claim:{key}"
        token = uuid.uuid4().hex
        if not self.redis.set(claim_key, token, nx=True, ex=self.claim_ttl):
            raise Claimed(key)
        stop = threading.Event()
        beat = threading.Thread(target=self._renew, args=(claim_key, token, stop), daemon=True, name=f"claim {key}")
        beat.start()
        try:
            yield token
        finally:
            stop.set()
            beat.join(timeout=1)
            with suppress(redis.RedisError):  # Redis down: the claim expires by itself
                self.redis.eval(_RELEASE, 1, claim_key, token)

    def _renew(self, claim_key: str, token: str, stop: threading.Event) -> None:
        while not stop.wait(max(1.0, self.claim_ttl / 3)):
            with suppress(redis.RedisError):  # a Redis outage: keep trying; the claim may lapse meanwhile
                self.redis.eval(_RENEW, 1, claim_key, token, self.claim_ttl)

    # --- bounded attempts ------------------------------------------------------------------------------------
    def add_attempt(self, key: str, reason: str) -> int:
        """Count one fruitless attempt at ``key`` (with its reason); returns the count so far."""
        pipe = self.redis.pipeline()
        pipe.hincrby(f"{PREFIX}:attempts:{key}", "count", 1)
        pipe.hset(f"{PREFIX}:attempts:{key}", "last_error", reason[:500])
        pipe.expire(f"{PREFIX}:attempts:{key}", DONE_TTL)
        return int(pipe.execute()[0])

    def attempts(self, key: str) -> int:
        return int(self.redis.hget(f"{PREFIX}:attempts:{key}", "count") or 0)
