"""Nonce allocation that stays correct when several processes send for one address at once.

Why a lock plus a counter: the EVM accepts nonces strictly in order, so a nonce must be handed out only
when the transaction that uses it is certain to reach the node. The allocator therefore serialises just
the short "pick nonce, sign, send" step per address (the receipt wait happens outside the lock) and
advances the counter only after the node accepted the transaction. A failed send leaves no gap; a stale
counter (another sender, a crashed holder, a restarted chain) shows up as "nonce too low" and is fixed by
:meth:`NonceAllocator.forget`, which makes the next holder re-read the node's pending count.

Two implementations: :class:`RedisNonceAllocator` for the fleet (processes and machines share it) and
:class:`LocalNonceAllocator` for a single process (tests on the in-process chain, scripts).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Protocol

import redis

from agentfleet.protocol import keys


class NonceAllocator(Protocol):
    """Hands out the next nonce of an address while its lock is held."""

    @contextmanager
    def locked(self, address: str) -> Iterator[None]:  # pragma: no cover - protocol
        yield

    def peek(self, address: str, fetch: Callable[[], int]) -> int: ...

    def advance(self, address: str, next_nonce: int) -> None: ...

    def forget(self, address: str) -> None: ...


class LocalNonceAllocator:
    """In-process allocator: a lock and a counter per address."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._next: dict[str, int] = {}

    @contextmanager
    def locked(self, address: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(address.lower(), threading.Lock())
        with lock:
            yield

    def peek(self, address: str, fetch: Callable[[], int]) -> int:
        key = address.lower()
        if key not in self._next:
            self._next[key] = fetch()
        return self._next[key]

    def advance(self, address: str, next_nonce: int) -> None:
        self._next[address.lower()] = next_nonce

    def forget(self, address: str) -> None:
        self._next.pop(address.lower(), None)


class RedisNonceAllocator:
    """Allocator shared through Redis: ``{prefix}:{chain}:{address}`` holds the next nonce.

    The lock has a TTL (``lock_timeout`` seconds) so a process killed while holding it blocks the others
    for at most that long; the next holder then meets "nonce too low" or a correct counter, never a gap.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        chain_id: int,
        prefix: str = keys.NONCE,
        lock_timeout: float = 30.0,
        wait_timeout: float = 120.0,
    ) -> None:
        self._redis = client
        self._chain_id = chain_id
        self._prefix = prefix
        self._lock_timeout = lock_timeout
        self._wait_timeout = wait_timeout

    def _key(self, address: str) -> str:
        return f"{self._prefix}:{self._chain_id}:{address.lower()}"

    @contextmanager
    def locked(self, address: str) -> Iterator[None]:
        lock = self._redis.lock(
            self._key(address) + ":lock",
            timeout=self._lock_timeout,
            blocking_timeout=self._wait_timeout,
            sleep=0.002,  # redis-py polls for a held lock; its 0.1 s default would cap us at ~10 tx/s
            thread_local=False,
        )
        if not lock.acquire():
            raise TimeoutError(f"nonce lock for {address} not acquired within {self._wait_timeout} s")
        try:
            yield
        finally:
            # LockError: it expired while held and the next holder owns it now; nothing to undo.
            with suppress(redis.exceptions.LockError):
                lock.release()

    def peek(self, address: str, fetch: Callable[[], int]) -> int:
        stored = self._redis.get(self._key(address))
        if stored is None:
            return fetch()
        return int(stored)

    def advance(self, address: str, next_nonce: int) -> None:
        self._redis.set(self._key(address), next_nonce)

    def forget(self, address: str) -> None:
        self._redis.delete(self._key(address))
