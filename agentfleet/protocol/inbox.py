"""The trainer's inbox: every outcome and clearing message the listener sent, until the trainer settled it.

Why: the Redis transport pops a message (BRPOP) before it writes it to its unacked index; a worker killed
between the two loses the message for good (acks_late cannot help: the broker no longer has it). Work on the
chain is re-driven by the reconciler from the chain's own state, but what the trainer learns has no such level
to read back: an outcome lost there was a lesson never learned. So the listener posts each training message
here (with the marks of its send); the trainer settles it where it writes its done marker (or finds it
reverted); the reconciler's sweep re-sends an entry that is still unsettled ``resend_after`` seconds after its
last send (a duplicate is harmless: the trainer learns an outcome once, by its done id) and drops it, with an
error in the log, after ``max_sends`` sends (a message the trainer keeps refusing is not sent forever).

Entries are keyed by the trainer's done id (``outcome_done_id``/``clearing_done_id``), the same id as its
done marker, so the sweep can also settle an entry whose trainer was killed after the marker.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, cast

import redis
from celery import Celery
from redis.client import Pipeline

from agentfleet.protocol import keys
from agentfleet.protocol.keys import text

log = logging.getLogger(__name__)

LETTERS = keys.TRAINING_INBOX  # hash: done id -> JSON {"task", "queue", "kwargs", "sends"}
DUE = f"{keys.TRAINING_INBOX}:due"  # sorted set: done id -> Unix time (s) of its last send


def outcome_done_id(task_id: int, agent: str) -> str:
    """One settled bid per (task, agent): the trainer's done id of an outcome (and the key of its bid record)."""
    return f"{int(task_id)}:{agent.lower()}"


def clearing_done_id(event_id: object) -> str:
    """One clearing per AuctionFinalized event."""
    return f"clearing:{event_id}"


@dataclass(frozen=True)
class Letter:
    done_id: str
    task: str  # the Celery task name
    queue: str
    kwargs: dict[str, Any]
    sends: int = 1


class TrainingInbox:
    def __init__(self, client: redis.Redis, *, resend_after: float = 300.0, max_sends: int = 5) -> None:
        self.redis = client
        self.resend_after = resend_after  # seconds after the last send before an unsettled letter is sent again
        self.max_sends = max_sends

    def post(self, letter: Letter, *, pipe: Pipeline, now: float | None = None) -> None:
        """Add the letter (in the caller's pipeline: the listener's marks of the send)."""
        body = {"task": letter.task, "queue": letter.queue, "kwargs": letter.kwargs, "sends": letter.sends}
        pipe.hset(LETTERS, letter.done_id, json.dumps(body))
        pipe.zadd(DUE, {letter.done_id: time.time() if now is None else now})

    def settle(self, done_id: str, *, pipe: Pipeline | None = None) -> None:
        """The trainer is done with it (learned, nothing to learn, or its event reverted)."""
        target = pipe if pipe is not None else self.redis.pipeline(transaction=False)
        target.hdel(LETTERS, done_id)
        target.zrem(DUE, done_id)
        if pipe is None:
            target.execute()

    def pending(self) -> int:
        return int(self.redis.zcard(DUE))

    def redeliver(self, app: Celery, *, limit: int = 200, now: float | None = None) -> Counter[str]:
        """One sweep over (at most ``limit``) letters unsettled ``resend_after`` seconds after their last send:
        settled by a done marker -> removed; else sent again (same kwargs, same queue), up to ``max_sends``."""
        now = time.time() if now is None else now
        done: Counter[str] = Counter()
        oldest = cast(list[bytes], self.redis.zrangebyscore(DUE, 0, now - self.resend_after, start=0, num=limit))
        due = [text(d) for d in oldest]
        if not due:
            return done
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(LETTERS, due)
        pipe.mget([keys.trainer_done(d) for d in due])
        bodies, markers = pipe.execute()
        writes = self.redis.pipeline(transaction=False)
        for done_id, raw, marker in zip(due, bodies, markers, strict=True):
            letter = _letter(done_id, raw)
            if marker is not None or letter is None:
                self.settle(done_id, pipe=writes)  # learned (its trainer died before settling), or unreadable
                done["training_settled" if marker is not None else "training_unreadable"] += 1
            elif letter.sends >= self.max_sends:
                log.error("training message %s unsettled after %s sends: dropped", done_id, letter.sends)
                self.settle(done_id, pipe=writes)
                done["training_dropped"] += 1
            else:
                app.send_task(letter.task, kwargs=letter.kwargs, queue=letter.queue, ignore_result=True)
                again = Letter(done_id, letter.task, letter.queue, letter.kwargs, letter.sends + 1)
                self.post(again, pipe=writes, now=now)
                done["training_resent"] += 1
        writes.execute()
        return done


def _letter(done_id: str, raw: bytes | None) -> Letter | None:
    if raw is None:
        return None
    try:
        body = json.loads(raw)
        return Letter(done_id, str(body["task"]), str(body["queue"]), dict(body["kwargs"]), int(body["sends"]))
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("training inbox entry %s unreadable: %s", done_id, exc)
        return None
