"""Which failures a task retries: infrastructure that comes back by itself, and counted fruitless tries."""

from __future__ import annotations

from typing import Any

import redis
import requests

from agentfleet.chain.errors import NodeUnavailable, TransactionDropped, TransactionReplaced, TransactionTimeout
from agentfleet.llm import LLMError, LLMOutputError


class TryLater(Exception):
    """A fruitless attempt (an LLM answer that never validated) that was counted: retry with backoff."""


# Infrastructure that comes back by itself: the broker/state store, the RPC node, the LLM server, a sent
# transaction still on its way. A task that meets one of these retries with backoff; the reconciler picks up
# whatever still needs doing after the last retry.
TRANSIENT = (
    LLMError,
    requests.ConnectionError,
    requests.Timeout,
    TimeoutError,
    ConnectionError,
    redis.ConnectionError,
    redis.TimeoutError,
    NodeUnavailable,
    TransactionTimeout,
    TransactionDropped,
    TransactionReplaced,
    TryLater,
)
RETRY: dict[str, Any] = {
    "autoretry_for": TRANSIENT,
    "retry_backoff": 2,
    "retry_backoff_max": 20,  # seconds; below the visibility timeout, or a waiting retry is delivered twice
    "retry_jitter": True,
    "max_retries": 6,
    "dont_autoretry_for": (LLMOutputError,),
}
