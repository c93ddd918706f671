"""The keeper's tasks (queue ``keeper``): close auctions whose deadline passed and expire abandoned work.

``finalize_due`` is beat's sweep over open auctions (from a cursor in Redis); ``finalize`` and ``expire`` act
on one task, sent by the reconciler. Each is idempotent on chain: a second call meets a named revert and
reports what the chain already says.
"""

from __future__ import annotations

from typing import Any

from celery import Task

from agentfleet.chain import bindings as b
from agentfleet.chain.local import chain_now
from agentfleet.protocol import keys, routing
from agentfleet.protocol.app import app
from agentfleet.protocol.status import TaskStatus
from agentfleet.retry import RETRY
from agentfleet.runtime import runtime


@app.task(name=routing.FINALIZE_DUE, bind=True, **RETRY)
def finalize_due(self: Task, limit: int = 200) -> dict[str, Any]:
    """Keeper (beat): finalize every auction whose deadline passed. Scans from a cursor kept in Redis."""
    rt = runtime()
    s = rt.session
    cursor_key = keys.KEEPER_FIRST_OPEN
    first = int(rt.redis.get(cursor_key) or 1)
    count = s.tasks.task_count()
    now = chain_now(s.client.w3)
    finalized, lowest_open = [], None
    for task_id in range(first, min(count, first + limit - 1) + 1):
        if s.tasks.status_of(task_id) != TaskStatus.OPEN:
            continue
        if now < s.tasks.bidding_deadline_of(task_id):
            lowest_open = lowest_open or task_id
            continue
        try:
            s.auction.finalize(s.requester, task_id)
            finalized.append(task_id)
        except b.BiddingStillOpen:
            lowest_open = lowest_open or task_id  # the chain's clock lags ours: try again next sweep
        except (b.AlreadyFinalized, b.TaskNotOpen):
            pass
    rt.redis.set(cursor_key, lowest_open or min(count + 1, first + limit))
    return {"finalized": finalized}


@app.task(name=routing.FINALIZE, bind=True, ignore_result=True, **RETRY)
def finalize(self: Task, task_id: int) -> dict[str, Any]:
    """Close one auction whose deadline passed (the contract picks the winner)."""
    s = runtime().session
    try:
        s.auction.finalize(s.requester, task_id)
    except (b.AlreadyFinalized, b.TaskNotOpen):
        return {"status": "already_finalized"}
    except b.BiddingStillOpen:
        return {"status": "still_open"}  # the chain's clock lags ours: the next sweep tries again
    return {"status": "finalized"}


@app.task(name=routing.EXPIRE, bind=True, ignore_result=True, **RETRY)
def expire(self: Task, task_id: int) -> dict[str, Any]:
    """Expire an assigned task whose execution window passed: refund the requester, penalise the agent."""
    s = runtime().session
    try:
        s.tasks.expire_task(s.requester, task_id)
    except (b.InvalidStatus, b.DeadlineNotReached):
        return {"status": "not_expirable"}
    return {"status": "expired"}
