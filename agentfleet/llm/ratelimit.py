"""A token bucket in Redis shared by every worker (Celery's rate_limit counts per worker only)."""

from __future__ import annotations

import time

import redis

from agentfleet.protocol import keys

# KEYS[1] bucket hash; ARGV: rate (tokens/s), burst, now (s, float). Returns seconds to wait (0 = granted).
_TAKE = """
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - ts) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
return tostring(wait)
"""


class TokenBucket:
    def __init__(self, client: redis.Redis, name: str, *, rate: float, burst: int) -> None:
        self.redis = client
        self.key = f"{keys.RATE_LIMIT}:{name}"
        self.rate = rate
        self.burst = burst
        self._take = client.register_script(_TAKE)

    def acquire(self, *, timeout: float = 60.0) -> None:
        """Block until a call is allowed; TimeoutError if that would take longer than ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            wait = float(self._take(keys=[self.key], args=[self.rate, self.burst, time.time()]))
            if wait <= 0:
                return
            if time.monotonic() + wait > deadline:
                raise TimeoutError(f"rate limit {self.key}: no slot within {timeout} s")
            time.sleep(wait)
