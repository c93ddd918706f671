"""Celery's side of a task's trace: every run of a fleet task that names a market task id is one entry.

Imported by the task modules (like ``agentfleet.worker_metrics``), so every worker and the trainer write the
entries: which Celery task ran for which market task, on which worker, how long, after how many retries, with
what result; a retry is an entry too, with its reason. Nothing here can fail a task (``TaskTrace`` drops an
entry it cannot write); the text of an error is scrubbed of secrets before it is written.
"""

from __future__ import annotations

import time
from typing import Any

from celery.signals import task_postrun, task_prerun, task_retry

from agentfleet import policy
from agentfleet.runtime import redis_only, secrets_of
from agentfleet.trace import TaskTrace

_started: dict[str, float] = {}


def _market_task(kwargs: Any) -> int | None:
    value = kwargs.get("task_id") if isinstance(kwargs, dict) else None
    return value if isinstance(value, int) and value > 0 else None


def _trace(hostname: str | None) -> TaskTrace:
    client, _settings = redis_only()
    return TaskTrace(client, source=hostname or "worker")


def _scrub(text: str) -> str:
    _client, settings = redis_only()
    return policy.scrub(text, secrets_of(settings))[:300]


def _summary(result: Any) -> dict[str, Any]:
    """What the dashboard shows of a result: its status and the small facts, per agent for a batch."""
    if not isinstance(result, dict):
        return {"status": "error", "error": _scrub(f"{type(result).__name__}: {result}")}
    shown = {k: v for k, v in result.items() if k in ("status", "amount", "mode", "score", "reason", "reward")}
    if isinstance(result.get("reason"), str):
        shown["reason"] = _scrub(result["reason"])
    decisions = result.get("decisions")
    if isinstance(decisions, dict):
        shown["decisions"] = {agent: _summary(each) for agent, each in decisions.items()}
    return shown


@task_prerun.connect
def _begin(task_id: str | None = None, **_kwargs: Any) -> None:
    if task_id:
        _started[task_id] = time.monotonic()


@task_postrun.connect
def _ran(
    sender: Any = None,
    task_id: str | None = None,
    kwargs: Any = None,
    retval: Any = None,
    state: str | None = None,
    **_extra: Any,
) -> None:
    began = _started.pop(task_id or "", None)
    market = _market_task(kwargs)
    if market is None or state == "RETRY":  # a retry has its own entry (below)
        return
    request = getattr(sender, "request", None)
    agents = kwargs.get("agents") if isinstance(kwargs, dict) else None
    _trace(getattr(request, "hostname", None)).add(
        market,
        "celery",
        task=getattr(sender, "name", "?"),
        celery_id=task_id,
        agent=kwargs.get("agent") if isinstance(kwargs, dict) else None,
        agents=len(agents) if isinstance(agents, list) else None,
        seconds=round(time.monotonic() - began, 4) if began is not None else None,
        retries=getattr(request, "retries", 0),
        state=state,
        result=_summary(retval),
    )


@task_retry.connect
def _retrying(sender: Any = None, request: Any = None, reason: Any = None, **_extra: Any) -> None:
    market = _market_task(getattr(request, "kwargs", None))
    if market is None:
        return
    _trace(getattr(request, "hostname", None)).add(
        market,
        "retry",
        task=getattr(sender, "name", "?"),
        celery_id=getattr(request, "id", None),
        retries=getattr(request, "retries", 0),
        reason=_scrub(str(reason)),
    )
