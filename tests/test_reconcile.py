"""The reconciler and the bounded LLM paths, on a real anvil, redis-server and Celery worker.

- Scoring answers that never validate: no score of 0 (the agent is not punished for the evaluator's
  failure); the task stays Submitted and is listed for a human decision (`agentfleet stuck`), which
  `agentfleet decide` completes.
- Execution answers that never validate: the agent gives the task up after its attempts; the reconciler
  expires it through the keeper once the window passed (refund to the requester, penalty to the agent).
- A TaskAssigned whose execute message was lost (never sent): the reconciler re-drives the execution; an
  outcome message the trainer never settled is sent again.
- A reorg deeper than the confirmations takes a completion away after the reconciler saw the task final:
  the next sweep sees a head of the last one replaced, reads the finished task again and re-drives its scoring.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from agentfleet.chain.local import advance_time, chain_now
from agentfleet.chain.market import TaskSpec, post_task
from agentfleet.protocol import keys, routing
from agentfleet.protocol.app import app
from agentfleet.protocol.inbox import Letter, TrainingInbox, outcome_done_id
from agentfleet.protocol.status import AuctionMode, TaskStatus
from shell.services import RedisServer
from testkit.chain import ETH, bids_on, create_task, fleet_env
from testkit.fleet import pump, running_fleet
from testkit.listener import queued
from testkit.llm import completion
from testkit.wait import wait_until
from workers import review
from workers.reconcile import reconcile

pytestmark = pytest.mark.anvil
ROOT = Path(__file__).resolve().parent.parent


def llm_garbage_for(kind: str) -> object:
    """Valid answers, except garbage for ``kind`` ("content": execution, "feedback": scoring)."""

    def handler(request: Request) -> Response:
        schema = json.dumps(json.loads(request.data).get("response_format", {}))
        if f'"{kind}"' in schema:
            return Response(json.dumps(completion("no JSON here, sorry")), content_type="application/json")
        if '"fraction"' in schema:
            content = {"fraction": 0.6, "reasoning": "fair"}
        elif '"content"' in schema:
            content = {"content": "the deliverable"}
        elif '"feedback"' in schema:
            content = {"score": 80, "feedback": "good"}
        else:
            content = {"score": 90, "reasoning": "fits"}
        return Response(json.dumps(completion(content)), content_type="application/json")

    return handler


def fleet_for(tmp_path: Path, redis_server: RedisServer, httpserver: HTTPServer, kind: str):  # type: ignore[no-untyped-def]
    httpserver.expect_request("/v1/chat/completions").respond_with_handler(llm_garbage_for(kind))  # type: ignore[arg-type]
    return running_fleet(
        tmp_path,
        redis_server,
        openai_api_key="sk-test-local",
        openai_base_url=httpserver.url_for("/v1"),
        llm_max_retries=0,
        action_logging=False,
        execute_attempts=2,
        score_attempts=2,
    )


def one_assigned_task(  # type: ignore[no-untyped-def]
    s, listener, client, execution_window: int = 3600, mode: AuctionMode = AuctionMode.OPEN
) -> int:
    spec = TaskSpec(
        "Write a literature review",
        ("research",),
        ETH,
        chain_now(s.client.w3) + 60,
        execution_window,
        s.evaluator.address,
        mode=mode,
    )
    task_id = post_task(s, s.requester, spec)
    pump(listener, lambda: bool(bids_on(s, task_id, client)))
    advance_time(s.client.w3, 61)
    app.send_task(routing.RECONCILE, queue=routing.KEEPER)  # finalizes the due auction
    pump(listener, lambda: s.tasks.status_of(task_id) >= TaskStatus.ASSIGNED)
    return task_id


def test_unusable_scores_wait_for_a_human_decision_never_a_zero(
    tmp_path: Path, redis_server: RedisServer, httpserver: HTTPServer
) -> None:
    with fleet_for(tmp_path, redis_server, httpserver, "feedback") as (s, listener, client):
        task_id = one_assigned_task(s, listener, client)
        pump(listener, lambda: review.waiting(client, task_id), timeout=120)
        assert s.tasks.status_of(task_id) == TaskStatus.SUBMITTED  # nobody scored it 0
        assert "no usable score" in review.pending(client)[task_id]["reason"]
        env = fleet_env(s, redis_server.url)
        listed = subprocess.run(
            [sys.executable, "-m", "shell.cli", "stuck"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        assert listed.returncode == 0 and str(task_id) in listed.stdout and "human score" in listed.stdout
        assert reconcile.apply().get() == {"waiting_review": 1}  # listed, not re-driven
        assert s.tasks.status_of(task_id) == TaskStatus.SUBMITTED
        decided = subprocess.run(
            [sys.executable, "-m", "shell.cli", "decide", str(task_id), "70"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert decided.returncode == 0, decided.stdout + decided.stderr
        assert s.tasks.get_task(task_id).score == 70 and not review.waiting(client, task_id)


def test_unusable_executions_are_given_up_and_expire_through_the_keeper(
    tmp_path: Path, redis_server: RedisServer, httpserver: HTTPServer
) -> None:
    with fleet_for(tmp_path, redis_server, httpserver, "content") as (s, listener, client):
        task_id = one_assigned_task(s, listener, client, execution_window=600, mode=AuctionMode.SEALED)
        agent = s.tasks.get_task(task_id).assignee
        key = f"{keys.WORK}:attempts:execute:{task_id}:{agent.lower()}"
        pump(listener, lambda: int(client.hget(key, "count") or 0) >= 2, timeout=120)
        reputation = s.registry.get_agent(agent).reputation
        escrowed = s.client.w3.eth.get_balance(s.tasks.address)
        advance_time(s.client.w3, 601)
        app.send_task(routing.RECONCILE, queue=routing.KEEPER)
        pump(listener, lambda: s.tasks.status_of(task_id) == TaskStatus.EXPIRED)
        assert s.client.w3.eth.get_balance(s.tasks.address) == escrowed - ETH  # refunded to the requester
        assert s.registry.get_agent(agent).reputation < reputation  # the seed's expiry penalty


def test_a_lost_execute_message_is_re_driven_by_the_reconciler(
    tmp_path: Path, redis_server: RedisServer, httpserver: HTTPServer
) -> None:
    with fleet_for(tmp_path, redis_server, httpserver, "nothing") as (s, listener, client):
        task_id = create_task(s, window=60)
        pump(listener, lambda: bool(bids_on(s, task_id)))
        listener.stop()  # the listener is gone: TaskAssigned will not be dispatched
        advance_time(s.client.w3, 61)
        s.auction.finalize(s.requester, task_id)
        lost = {"agent": s.agent(0).address, "task_id": 99, "outcome": "lost"}  # sent long ago, never settled
        with client.pipeline() as pipe:
            letter = Letter(outcome_done_id(99, s.agent(0).address), routing.RECORD_OUTCOME, routing.TRAINING, lost)
            TrainingInbox(client).post(letter, pipe=pipe, now=0)
            pipe.execute()
        assert reconcile.apply().get() == {"execute": 1, "training_resent": 1}  # run here; executed on the worker
        assert [m["kwargs"] for m in queued(client, routing.TRAINING)] == [lost]  # the lost outcome, sent again
        wait_until(  # executed and submitted without any event
            lambda: s.tasks.status_of(task_id) >= TaskStatus.SUBMITTED,
            60,
            lambda: f"task {task_id} not submitted (status {s.tasks.status_of(task_id)})",
            interval=0.5,
        )


def test_a_completion_taken_away_by_a_reorg_is_scored_again(
    tmp_path: Path, redis_server: RedisServer, httpserver: HTTPServer
) -> None:
    with fleet_for(tmp_path, redis_server, httpserver, "nothing") as (s, listener, client):
        task_id = one_assigned_task(s, listener, client)
        pump(listener, lambda: s.tasks.status_of(task_id) == TaskStatus.COMPLETED, timeout=120)
        assert reconcile.apply().get() == {}  # seen final: it leaves the unfinished set
        w3 = s.client.w3
        completed = s.client.contract("TaskManager").events.TaskCompleted.get_logs(from_block=0)
        depth = w3.eth.block_number - completed[-1].blockNumber + 1
        w3.provider.make_request("anvil_reorg", [depth, []])  # type: ignore[arg-type]
        assert s.tasks.status_of(task_id) == TaskStatus.SUBMITTED  # the completion is gone, and no event says so
        assert reconcile.apply().get() == {"reorg_recheck": 1, "evaluate": 1}
        wait_until(  # scored and completed again, without the listener
            lambda: s.tasks.status_of(task_id) == TaskStatus.COMPLETED,
            60,
            lambda: f"task {task_id} not completed again (status {s.tasks.status_of(task_id)})",
            interval=0.5,
        )
        assert reconcile.apply().get() == {}  # final again, nothing more to do
