"""Several RPC endpoints with failover and backoff, and eth_getLogs in batches whose size adapts.

Why adaptive: providers cap eth_getLogs by block range or by result count, with different error texts;
the listener must backfill days of history without knowing the cap. A refused or timed-out range is
halved and retried; after a run of quiet successes the range grows back, so an idle chain is scanned
in few calls.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import requests
from web3 import HTTPProvider, Web3
from web3.exceptions import Web3RPCError
from web3.types import FilterParams, LogReceipt

from agentfleet.settings import redact_url

log = logging.getLogger(__name__)


def redact_text(text: str, urls: Sequence[str]) -> str:
    """Error texts from requests/urllib3 quote the URL or just its path: hide both."""
    from urllib.parse import urlsplit

    for url in urls:
        text = text.replace(url, redact_url(url))
        parts = urlsplit(url)
        for secret in (parts.path if len(parts.path) > 1 else "", parts.query, parts.password or ""):
            if secret:
                text = text.replace(secret, "…")
    return text


def short_reason(exc: BaseException) -> str:
    """One line for a log: the exception type and its OS-level cause when there is one.

    Why: requests' connection errors nest three exceptions in a 300-character text; "[Errno 111] Connection
    refused" is what an operator needs (callers still pass the result through ``redact_text``).
    """
    text = str(exc)
    errno = re.search(r"\[Errno -?\d+\][^'\")]*", text)
    detail = (errno.group(0) if errno else (text.splitlines() or [""])[0][:200]).strip().rstrip(".")
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


T = TypeVar("T")

# Texts providers use when a log query is too big (geth, erigon, alchemy, infura, anvil, our test proxy).
_TOO_LARGE = (
    "range too large",
    "too many results",
    "query returned more than",
    "block range",
    "limit exceeded",
    "response size",
    "too large",
    "-32005",
)


class RpcUnavailable(RuntimeError):
    """Every endpoint failed ``attempts`` times in a row."""


def is_range_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(marker in text for marker in _TOO_LARGE)


class RpcPool:
    """Round-robin failover across HTTP endpoints with capped exponential backoff.

    Each retried failure is logged in one line; the last one is not: it is raised as ``RpcUnavailable``, whose
    text (redacted) the caller logs, so an outage costs exactly one line per attempt. ``on_error`` is told
    every failure (for the ``rpc_errors`` metric). ``sleep`` waits between attempts: the listener passes its
    stop event's ``wait`` so SIGTERM is not held up by a backoff.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        timeout: float = 10.0,
        backoff_initial: float = 0.05,
        backoff_max: float = 2.0,
        attempts: int = 8,
        on_error: Callable[[str, BaseException], None] | None = None,
        w3s: Sequence[Web3] | None = None,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        if not urls and not w3s:
            raise ValueError("RpcPool needs at least one endpoint")
        self.urls = list(urls) if urls else [f"w3[{i}]" for i in range(len(w3s or []))]
        self._w3s = list(w3s) if w3s else [self._make(u, timeout) for u in self.urls]
        self._current = 0
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.attempts = attempts
        self.on_error = on_error
        self.sleep = sleep

    @property
    def endpoints(self) -> str:
        """The endpoints as logs may show them (scheme://host:port, no key or password)."""
        return ", ".join(redact_url(url) for url in self.urls)

    @staticmethod
    def _make(url: str, timeout: float) -> Web3:
        # No built-in retries: failover and backoff are decided here, with metrics.
        provider = HTTPProvider(url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None)
        return Web3(provider)

    @property
    def w3(self) -> Web3:
        return self._w3s[self._current]

    def call(self, fn: Callable[[Web3], T], *, retry_range_errors: bool = False) -> T:
        """Run ``fn`` against the current endpoint; on transport/server errors rotate and back off.

        Range errors and timeouts are re-raised at once (unless ``retry_range_errors``) so the caller can
        shrink its query first; at the smallest query they are treated like any other failure.
        """
        delay = self.backoff_initial
        reason = ""
        for attempt in range(1, self.attempts + 1):
            try:
                return fn(self.w3)
            except (requests.RequestException, OSError, Web3RPCError, ValueError) as exc:
                if not retry_range_errors and (is_range_error(exc) or isinstance(exc, requests.Timeout)):
                    raise  # the caller may shrink the query instead
                url = redact_url(self.urls[self._current])
                reason = redact_text(short_reason(exc), self.urls)
                if self.on_error:
                    self.on_error(url, exc)
                self._current = (self._current + 1) % len(self._w3s)
                if attempt == self.attempts:
                    break
                log.warning(
                    "RPC %s failed (attempt %s/%s, next in %.2f s): %s", url, attempt, self.attempts, delay, reason
                )
                self.sleep(delay)
                delay = min(self.backoff_max, delay * 2)
        # Not chained to the last error: its text (and so a traceback) would show the URL's key or password.
        raise RpcUnavailable(f"RPC {self.endpoints} unavailable after {self.attempts} attempts: {reason}")


class AdaptiveLogFetcher:
    """eth_getLogs over [start, end] in batches that shrink on refusal and grow when quiet."""

    def __init__(
        self,
        pool: RpcPool,
        addresses: Sequence[str],
        *,
        initial_batch: int = 500,
        min_batch: int = 1,
        max_batch: int = 5000,
        grow_after: int = 3,
        quiet_results: int = 1000,
    ) -> None:
        self.pool = pool
        self.addresses = [Web3.to_checksum_address(a) for a in addresses]
        self.batch = initial_batch
        self.min_batch = min_batch
        self.max_batch = max_batch
        self.grow_after = grow_after
        self.quiet_results = quiet_results
        self._streak = 0

    def fetch(self, start: int, end: int) -> tuple[int, list[LogReceipt]]:
        """Logs of one batch starting at ``start`` (never past ``end``); returns (last block covered, logs)."""
        while True:
            stop = min(end, start + self.batch - 1)
            params: FilterParams = {"fromBlock": start, "toBlock": stop, "address": self.addresses}
            smallest = self.batch <= self.min_batch
            try:
                logs = self.pool.call(
                    lambda w3, p=params: w3.eth.get_logs(p),  # type: ignore[misc]
                    retry_range_errors=smallest,
                )
            except (Web3RPCError, ValueError, requests.RequestException) as exc:
                if smallest or not (is_range_error(exc) or isinstance(exc, requests.Timeout)):
                    raise
                self.batch = max(self.min_batch, self.batch // 2)
                self._streak = 0
                log.info("getLogs %s..%s refused (%s); batch now %s", start, stop, str(exc)[:80], self.batch)
                continue
            self._adapt(len(logs))
            return stop, sorted(logs, key=_log_order)

    def _adapt(self, count: int) -> None:
        if count >= self.quiet_results:
            self._streak = 0
            return
        self._streak += 1
        if self._streak >= self.grow_after and self.batch < self.max_batch:
            self.batch = min(self.max_batch, self.batch * 2)
            self._streak = 0


def _log_order(entry: Any) -> tuple[int, int]:
    return int(entry["blockNumber"]), int(entry["logIndex"])
