"""The trace of a task: one timeline per task id, written by every process that touches the task.

Why: a task's life crosses the listener (chain events), the queues (Celery tasks on several workers), the LLM
(calls with tokens and cost), the keeper and the trainer. Each of them knows its own part and nobody else does;
an operator asking "why is task 12 stuck?" needs all of it in order. Each process appends what it did to a
capped Redis stream per task (``agentfleet:trace:{task_id}``); the dashboard reads it back. Writing a trace
entry never fails the work: a Redis error is logged and dropped.

Entry kinds (``kind``): ``chain`` (a contract event: name, block, tx, args, the messages it caused),
``reverted`` (an event a reorg removed), ``celery`` (a task run: name, worker, seconds, retries, state,
result status), ``retry`` (a task will run again: reason, countdown), ``llm`` (one LLM call: role, agent,
tokens, cost), ``trainer`` (an outcome learned or skipped). Entries carry ``at`` (unix seconds, the writer's
clock) and ``source`` (listener, the worker's hostname, trainer).
"""

from __future__ import annotations

import json
import logging
import socket
import time
from dataclasses import dataclass
from typing import Any

import redis
from redis.client import Pipeline

from agentfleet.protocol import keys

log = logging.getLogger(__name__)

TRACE_MAXLEN = 500  # entries per task (approximate): a task's life is tens of entries; retries storms are capped
TRACE_TTL = 30 * 24 * 3600  # seconds: a finished task's trace is kept a month


def trace_key(task_id: int) -> str:
    return f"{keys.ROOT}:trace:{int(task_id)}"


@dataclass(frozen=True)
class TraceEntry:
    """One step of a task's life, as one process saw it."""

    id: str  # the stream entry id (orders entries written to the same Redis)
    at: float  # unix seconds, the writer's clock
    kind: str
    source: str
    data: dict[str, Any]


class TaskTrace:
    """Append to and read a task's timeline (see the module's docstring)."""

    def __init__(self, client: redis.Redis, *, source: str | None = None, maxlen: int = TRACE_MAXLEN) -> None:
        self.redis = client
        self.source = source or socket.gethostname()
        self.maxlen = maxlen

    def add(self, task_id: int, kind: str, *, pipe: Pipeline | None = None, **data: Any) -> None:
        """Append one entry; with ``pipe`` it joins that pipeline (the listener's per-event round trip)."""
        fields = {
            "at": f"{time.time():.6f}",
            "kind": kind,
            "source": self.source,
            "data": json.dumps(data, default=str, separators=(",", ":")),
        }
        key = trace_key(task_id)
        try:
            target = pipe if pipe is not None else self.redis.pipeline(transaction=False)
            target.xadd(key, fields, maxlen=self.maxlen, approximate=True)  # type: ignore[arg-type]
            target.expire(key, TRACE_TTL)
            if pipe is None:
                target.execute()
        except redis.RedisError as exc:  # the trace must never cost the work itself
            log.warning("trace entry %s for task %s dropped: %s", kind, task_id, exc)

    def read(self, task_id: int, *, limit: int = TRACE_MAXLEN) -> list[TraceEntry]:
        """The task's entries in the order Redis received them."""
        entries = []
        raw: Any = self.redis.xrange(trace_key(task_id), count=limit)
        for entry_id, fields in raw or []:
            text = {_s(k): _s(v) for k, v in (fields or {}).items()}
            try:
                data = json.loads(text.get("data", "{}"))
            except ValueError:
                data = {"unreadable": text.get("data", "")}
            entries.append(
                TraceEntry(
                    id=_s(entry_id),
                    at=float(text.get("at", "0") or 0),
                    kind=text.get("kind", "?"),
                    source=text.get("source", "?"),
                    data=data if isinstance(data, dict) else {"value": data},
                )
            )
        return entries


def _s(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
