"""The trace of a task: every process that touches a task writes its part into one timeline per task id."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from agentfleet.chain.local import advance_time
from agentfleet.protocol import routing
from agentfleet.protocol.app import app
from agentfleet.protocol.status import TaskStatus
from agentfleet.trace import TaskTrace, trace_key
from shell.services import RedisServer
from testkit.chain import bids_on, create_task
from testkit.fleet import QUEUES, pump, running_fleet


@pytest.mark.anvil
def test_a_tasks_life_is_one_timeline_from_creation_to_learning(tmp_path: Path, redis_server: RedisServer) -> None:
    models = tmp_path / "models"  # not the project's models folder: a rerun must learn again
    fleet = running_fleet(tmp_path, redis_server, queues=[*QUEUES, routing.TRAINING], models_dir=models)
    with fleet as (s, listener, client):
        task_id = create_task(s, tags=["research"], window=30, text="Survey <b>rollups</b>")
        pump(listener, lambda: bool(bids_on(s, task_id)))
        advance_time(s.client.w3, 31)
        app.send_task(routing.FINALIZE_DUE, queue=routing.KEEPER)
        trace = TaskTrace(client)
        learned = lambda: any(e.kind == "trainer" for e in trace.read(task_id))  # noqa: E731
        pump(listener, lambda: s.tasks.status_of(task_id) == TaskStatus.COMPLETED and learned(), timeout=120)

        entries = trace.read(task_id)
        chain = [e.data["name"] for e in entries if e.kind == "chain"]
        for name in ("TaskCreated", "BidPlaced", "TaskAssigned", "ResultSubmitted", "TaskCompleted"):
            assert name in chain, chain
        created = next(e for e in entries if e.kind == "chain" and e.data["name"] == "TaskCreated")
        assert created.source == "listener" and created.data["block"] > 0 and created.data["tx"].startswith("0x")
        assert created.data["messages"] and created.data["messages"][0]["task"] == routing.CONSIDER
        assert "description" not in created.data["args"]  # the text stays in the content store
        ran = {e.data["task"]: e for e in entries if e.kind == "celery"}
        for name in (routing.CONSIDER, routing.FINALIZE, routing.EXECUTE, routing.EVALUATE, routing.RECORD_OUTCOME):
            if name == routing.FINALIZE and name not in ran:
                continue  # the sweep (finalize_due) closes it without a per-task message
            assert name in ran, sorted(ran)
        assert ran[routing.EXECUTE].data["result"]["status"] == "submitted"
        assert ran[routing.EXECUTE].data["seconds"] >= 0 and ran[routing.EXECUTE].source  # the worker's hostname
        assert ran[routing.CONSIDER].data["result"]["decisions"]  # a batch: one result per agent
        roles = [e.data["role"] for e in entries if e.kind == "llm"]
        assert {"fit", "execute", "score"} <= set(roles)
        assert [e.data["outcome"] for e in entries if e.kind == "trainer"] == ["won"]

        client.delete(trace_key(task_id))
        assert trace.read(task_id) == []


def test_a_trace_entry_never_fails_the_work(redis_server: RedisServer) -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    TaskTrace(dead).add(1, "llm", role="fit")  # logged and dropped, no exception
    client = redis.Redis.from_url(redis_server.url)
    client.xadd(trace_key(2), {"at": "1", "kind": "note", "source": "x", "data": "{not json"})
    assert TaskTrace(client).read(2)[0].data == {"unreadable": "{not json"}
