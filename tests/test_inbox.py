"""The trainer's inbox: a training message lost between the broker and a killed worker is sent again."""

from __future__ import annotations

import pytest
import redis

from agentfleet.protocol import keys, routing
from agentfleet.protocol.app import app
from agentfleet.protocol.inbox import DUE, LETTERS, Letter, TrainingInbox, clearing_done_id, outcome_done_id
from shell.services import RedisServer
from testkit.listener import queued

AGENT = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"


def letter(task_id: int) -> Letter:
    kwargs = {"agent": AGENT, "task_id": task_id, "outcome": "lost"}
    return Letter(outcome_done_id(task_id, AGENT), routing.RECORD_OUTCOME, routing.TRAINING, kwargs)


def post(inbox: TrainingInbox, *letters: Letter, now: float) -> None:
    pipe = inbox.redis.pipeline()
    for one in letters:
        inbox.post(one, pipe=pipe, now=now)
    pipe.execute()


@pytest.fixture
def broker(redis_server: RedisServer, redis_client: redis.Redis) -> redis.Redis:
    """The app sends to this test's (empty) Redis."""
    app.conf.broker_url = redis_server.url
    app.conf.result_backend = redis_server.url  # before the first send: the app keeps the back end it made first
    return redis_client


def test_unsettled_letters_are_sent_again_and_settled_ones_leave(broker: redis.Redis) -> None:
    redis_client = broker
    inbox = TrainingInbox(redis_client, resend_after=60, max_sends=3)
    post(inbox, letter(1), letter(2), letter(3), now=1000)
    post(inbox, letter(4), now=1050)  # sent later: not due at 1065
    redis_client.set(keys.trainer_done(outcome_done_id(2, AGENT)), "7")  # learned; its trainer died before settling
    inbox.settle(outcome_done_id(3, AGENT))  # settled by the trainer

    done = inbox.redeliver(app, now=1065)
    assert done == {"training_resent": 1, "training_settled": 1}
    assert [m["kwargs"] for m in queued(redis_client, routing.TRAINING)] == [letter(1).kwargs]
    assert inbox.pending() == 2  # 1 (sent again) and 4
    assert inbox.redeliver(app, now=1115) == {"training_resent": 1}  # 4; 1 was sent again at 1065


def test_a_letter_the_trainer_keeps_refusing_is_dropped_after_max_sends(broker: redis.Redis) -> None:
    redis_client = broker
    inbox = TrainingInbox(redis_client, resend_after=10, max_sends=3)
    post(inbox, letter(1), now=0)
    sent = [inbox.redeliver(app, now=t) for t in (10, 20, 30)]
    assert sent == [{"training_resent": 1}, {"training_resent": 1}, {"training_dropped": 1}]
    assert inbox.pending() == 0 and redis_client.hlen(LETTERS) == 0
    assert len(queued(redis_client, routing.TRAINING)) == 2


def test_an_unreadable_letter_is_settled_not_sent(broker: redis.Redis) -> None:
    redis_client = broker
    inbox = TrainingInbox(redis_client, resend_after=10)
    redis_client.hset(LETTERS, clearing_done_id("0xabc:1"), "{not json")
    redis_client.zadd(DUE, {clearing_done_id("0xabc:1"): 0, "orphan": 0})  # "orphan": no letter at all
    assert inbox.redeliver(app, now=100) == {"training_unreadable": 2}
    assert inbox.pending() == 0 and not queued(redis_client, routing.TRAINING)
