"""The keeper's tasks (queue ``keeper``): close auctions whose deadline passed and expire abandoned work.

``finalize_due`` is beat's sweep over open auctions (from a cursor in Redis); ``finalize`` and ``expire`` act
on one task, sent by the reconciler. Auctions close in their mode (``close_auction``: open ones by
``finalize``, sealed ones by submitting the bid book as the requester). Each is idempotent on chain: a
second call meets a named revert and reports what the chain already says.
"""

from __future__ import annotations

from typing import Any

from celery import Task

from agentfleet import task_trace  # noqa: F401  (writes each run into the market task's trace)
from agentfleet.bidding.closing import close_auction
from agentfleet.bidding.sealed import BidBook
from agentfleet.chain import bindings as b
from agentfleet.chain.local import chain_now
from agentfleet.protocol import keys, routing
from agentfleet.protocol.app import app
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
    book = BidBook(rt.redis)
    for task_id in range(first, min(count, first + limit - 1) + 1):
        closing = close_auction(s, book, task_id, caller=s.requester, now=now)  # reads status and terms at once
        if closing.status == "finalized":
            finalized.append(task_id)
        elif closing.status in {"still_open", "not_requester"}:
            lowest_open = lowest_open or task_id  # not yet (or not ours until the reveal window ends)
    rt.redis.set(cursor_key, lowest_open or min(count + 1, first + limit))
    return {"finalized": finalized}


@app.task(name=routing.FINALIZE, bind=True, ignore_result=True, **RETRY)
def finalize(self: Task, task_id: int) -> dict[str, Any]:
    """Close one auction whose deadline passed (the contract picks the winner)."""
    rt = runtime()
    s = rt.session
    closing = close_auction(s, BidBook(rt.redis), task_id, caller=s.requester, now=chain_now(s.client.w3))
    return {"status": closing.status, "mode": closing.mode.label, "bids": closing.bids}


@app.task(name=routing.EXPIRE, bind=True, ignore_result=True, **RETRY)
def expire(self: Task, task_id: int) -> dict[str, Any]:
    """Expire an assigned task whose execution window passed: refund the requester, penalise the agent."""
    s = runtime().session
    try:
        s.tasks.expire_task(s.requester, task_id)
    except (b.InvalidStatus, b.DeadlineNotReached):
        return {"status": "not_expirable"}
    return {"status": "expired"}
