"""The marketplace dashboard: hostile text shown as text, secrets never shown, basic auth beyond loopback, pages
that survive a Redis or chain outage with a banner, and the pages in headless Chromium while a fleet runs."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import Message
from pathlib import Path

import pytest
import redis
import uvicorn
from pydantic import SecretStr

from agentfleet.chain.local import advance_time
from agentfleet.content import ResultStore, TaskTexts
from agentfleet.directory import AgentDirectory, FleetAgent
from agentfleet.protocol import keys, routing
from agentfleet.protocol.app import app as celery_app
from agentfleet.protocol.status import AuctionMode, TaskStatus
from agentfleet.runtime import runtime
from agentfleet.settings import Settings
from agentfleet.trace import TaskTrace
from dashboard import app as dashboard_app
from dashboard.app import UnsafeBind, check_bind, create_app
from dashboard.data import Sources
from shell.services import RedisServer, free_port
from testkit import browser
from testkit.chain import ETH, bids_on, clean_env, create_task, deployed_market
from testkit.fleet import pump, running_fleet

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
DEAD_RPC = "http://127.0.0.1:9"  # the discard port: nothing answers


@contextmanager
def serving(settings: Settings, sources: Sources | None = None) -> Iterator[str]:
    """The dashboard app under uvicorn in a thread on a free loopback port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, sources=sources), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="dashboard", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the dashboard did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def get(url: str, *, auth: tuple[str, str] | None = None, method: str = "GET") -> tuple[int, str, Message]:
    headers = {}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    request = urllib.request.Request(url, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read().decode(), answer.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), error.headers


def settings_for(redis_url: str, **overrides: object) -> Settings:
    return Settings(redis_url=SecretStr(redis_url), rpc_urls=[DEAD_RPC], **overrides)  # type: ignore[arg-type]


# --- escaping and secrets -------------------------------------------------------------------------------------------
@pytest.mark.anvil
def test_task_text_llm_answer_and_failures_with_html_are_shown_as_text(
    tmp_path: Path, redis_client: redis.Redis, redis_server: RedisServer
) -> None:
    with deployed_market("anvil", tmp_path, register=2) as s:
        task_id = create_task(s, text=f"Summarise {HOSTILE} please", window=30)
        TaskTexts(redis_client).put(f"Summarise {HOSTILE} please", task_id=task_id)
        s.auction.place_bid(s.agent(0), task_id, ETH // 2)
        advance_time(s.client.w3, 31)
        s.auction.finalize(s.requester, task_id)
        digest = ResultStore(redis_client).put(f"The answer is {HOSTILE}")  # what the LLM wrote
        s.tasks.submit_result(s.agent(0), task_id, digest, "sha256:" + digest.hex())
        s.tasks.complete_task(s.evaluator, task_id, 80)
        agent = s.agent(0).address
        AgentDirectory(redis_client).put(FleetAgent(agent, f"Agent{HOSTILE}", "research", ["research"]))
        trace = TaskTrace(redis_client, source=f"worker{HOSTILE}")
        trace.add(task_id, "llm", role="execute", agent=agent, prompt_tokens=10, completion_tokens=5, cost_usd=0.001)
        trace.add(
            task_id, "celery", task=routing.CONSIDER, state="SUCCESS", result={"status": "refused", "reason": HOSTILE}
        )
        trace.add(task_id, "retry", task=routing.EXECUTE, retries=1, reason=f"LLM said {HOSTILE}")
        redis_client.xadd(keys.FAILURES, {"task": routing.EXECUTE, "id": "x", "error": HOSTILE, "at": str(time.time())})
        settings = Settings(
            redis_url=SecretStr(redis_server.url),
            rpc_urls=[s.client.w3.provider.endpoint_uri],  # type: ignore[attr-defined]
            contract_addresses_path=s.settings.contract_addresses_path,
            models_dir=tmp_path / "models",
        )
        with serving(settings, Sources(settings, celery_app=_no_workers())) as base:
            pages = {
                path: get(base + path) for path in ("/", f"/tasks/{task_id}", "/agents", f"/agents/{agent}", "/fleet")
            }
    for path, (status, body, _headers) in pages.items():
        assert status == 200, (path, body[:2000])
        assert HOSTILE not in body, path
        assert "<script>alert" not in body.lower(), path
    assert ESCAPED in pages["/"][1]  # the task text, in the market table
    task_page = pages[f"/tasks/{task_id}"][1]
    assert f"The answer is {ESCAPED}" in task_page  # the LLM's answer
    assert f"Summarise {ESCAPED} please" in task_page and f"LLM said {ESCAPED}" in task_page
    assert ESCAPED in pages["/fleet"][1] and ESCAPED in pages["/agents"][1]
    assert "weighted price" in task_page and "TaskCompleted" in task_page  # the chain's side of the timeline


def test_secrets_are_scrubbed_and_no_setting_is_shown(redis_client: redis.Redis, redis_server: RedisServer) -> None:
    key = "sk-test-0123456789abcdef"
    settings = settings_for(redis_server.url, openai_api_key=SecretStr(key), dashboard_password=SecretStr("hunter2pw"))
    TaskTexts(redis_client).put("a task", task_id=1)
    TaskTrace(redis_client).add(1, "retry", task=routing.EXECUTE, retries=1, reason=f"auth failed for {key}")
    redis_client.xadd(keys.FAILURES, {"task": routing.EXECUTE, "id": "y", "error": f"bad key {key} hunter2pw"})
    with serving(settings, Sources(settings, celery_app=_no_workers())) as base:
        auth = ("operator", "hunter2pw")
        pages = [get(base + path, auth=auth)[1] for path in ("/", "/tasks/1", "/agents", "/fleet")]
    for body in pages:
        assert key not in body and "hunter2pw" not in body and "mnemonic" not in body.lower()
    assert "[redacted]" in pages[1] and "[redacted]" in pages[3]


# --- login --------------------------------------------------------------------------------------------------------
def test_beyond_loopback_every_page_asks_for_the_login(redis_client: redis.Redis, redis_server: RedisServer) -> None:
    settings = settings_for(redis_server.url, dashboard_address="0.0.0.0", dashboard_password=SecretStr("s3cret-pw"))
    check_bind(settings)  # a password: allowed
    with serving(settings, Sources(settings, celery_app=_no_workers())) as base:  # served on loopback in the test
        for path in ("/", "/tasks/1", "/agents", "/fleet", "/static/style.css"):
            status, body, headers = get(base + path)
            assert status == 401, path
            assert headers["WWW-Authenticate"].startswith("Basic ")
            assert "s3cret" not in body
        assert get(base + "/", auth=("operator", "wrong"))[0] == 401
        assert get(base + "/", auth=("admin", "s3cret-pw"))[0] == 401
        status, body, headers = get(base + "/", auth=("operator", "s3cret-pw"))
        assert status == 200 and "Market" in body
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert get(base + "/", auth=("operator", "s3cret-pw"), method="POST")[0] == 405  # read-only
        assert get(base + "/healthz")[0] in (200, 503)  # health needs no login and tells nothing secret
        assert get(base + "/docs", auth=("operator", "s3cret-pw"))[0] == 404


def test_refuses_to_start_beyond_loopback_without_a_password() -> None:
    for address in ("127.0.0.1", "::1", "localhost", "127.0.0.5"):
        check_bind(Settings(dashboard_address=address))
    for address in ("0.0.0.0", "::", "192.168.1.10", "dashboard.example"):
        with pytest.raises(UnsafeBind, match="AGENTFLEET_DASHBOARD_PASSWORD"):
            check_bind(Settings(dashboard_address=address))
    with pytest.raises(UnsafeBind):
        dashboard_app.serve(Settings(dashboard_address="0.0.0.0", dashboard_port=free_port()))  # before any bind
    env = {**clean_env(), "AGENTFLEET_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    done = subprocess.run(
        [sys.executable, "-m", "shell.cli", "dashboard", "--address", "0.0.0.0", "--port", str(free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "refusing to serve the dashboard on 0.0.0.0" in done.stdout and "Traceback" not in done.stderr


# --- outages --------------------------------------------------------------------------------------------------------
def test_pages_survive_redis_and_chain_outages_with_a_banner() -> None:
    server = RedisServer.start()
    try:
        settings = settings_for(server.url)
        TaskTexts(redis.Redis.from_url(server.url)).put("a task", task_id=1)
        with serving(settings, Sources(settings, celery_app=_no_workers())) as base:
            status, body, _ = get(base + "/")
            assert status == 200 and "chain RPC unreachable" in body and "Redis unreachable" not in body
            server.stop()  # Redis goes away under the running dashboard
            for path in ("/", "/tasks/1", "/agents", "/agents/0x0000000000000000000000000000000000000001", "/fleet"):
                status, body, _ = get(base + path)
                assert status in (200, 503), (path, body[:1000])
                assert "Redis unreachable" in body and "chain RPC unreachable" in body, path
                assert "Traceback" not in body and "Internal Server Error" not in body
                assert 'role="alert"' in body  # the banner
            status, body, _ = get(base + "/healthz")
            assert status == 503 and json.loads(body) == {"redis": False, "chain": False}
            fragment = urllib.request.Request(base + "/fleet", headers={"X-Dashboard-Fragment": "1"})
            with urllib.request.urlopen(fragment, timeout=30) as answer:  # what live.js swaps in
                part = answer.read().decode()
            assert "Redis unreachable" in part and "<html" not in part
    finally:
        server.stop()


class _NoWorkers:
    """A Celery app stand-in whose ping nobody answers (unit tests run no worker)."""

    class control:
        @staticmethod
        def ping(timeout: float = 1.0) -> list[dict[str, object]]:
            return []


def _no_workers() -> _NoWorkers:
    return _NoWorkers()


# --- the real thing in Chromium --------------------------------------------------------------------------------------
CHROMIUM_FLAGS = ("--hide-scrollbars", "--virtual-time-budget=3000")


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    return browser.chromium(*args, flags=CHROMIUM_FLAGS)


def screenshot(url: str, path: Path, *, height: int = 2000) -> None:
    done = chromium(f"--screenshot={path}", f"--window-size=1280,{height}", url)
    assert done.returncode == 0 and path.stat().st_size > 10_000, done.stderr[-2000:]


@pytest.mark.anvil
@pytest.mark.slow
def test_dashboard_in_chromium_while_a_fleet_runs_tasks(
    tmp_path: Path, redis_server: RedisServer, artifacts_out: Path
) -> None:
    with running_fleet(tmp_path, redis_server) as (s, listener, client):
        ids = [
            create_task(
                s, tags=["research"], window=40, mode=AuctionMode.OPEN, text="Review sealed-bid auction papers"
            ),
            create_task(s, tags=["coding"], window=40, mode=AuctionMode.SEALED, text="Write a parser for task tags"),
            create_task(s, tags=["data_analysis"], window=40, text="Analyse the bids of the last week"),
        ]
        pump(listener, lambda: all(bids_on(s, t, client) for t in ids))
        advance_time(s.client.w3, 41)
        celery_app.send_task(routing.FINALIZE_DUE, queue=routing.KEEPER)
        pump(listener, lambda: all(s.tasks.status_of(t) == TaskStatus.COMPLETED for t in ids), timeout=120)
        for _ in range(3):  # the last events (TaskCompleted, Settled) into the stream and the traces
            listener.step()
        settings = runtime().settings.model_copy(update={"models_dir": tmp_path / "models"})
        sources = Sources(settings, redis_client=client, celery_app=celery_app)
        winner = s.tasks.get_task(ids[0]).assignee
        with serving(settings, sources) as base:
            market = chromium("--dump-dom", base + "/").stdout
            for task_id in ids:
                assert f'href="/tasks/{task_id}"' in market
            assert market.count("pill status-completed") >= 3 and "3 tasks on chain" in market
            assert "<svg" in market  # the throughput chart

            page = chromium("--dump-dom", f"{base}/tasks/{ids[0]}").stdout
            timeline = page[page.index('class="timeline"') :]
            for step in (
                "TaskCreated",
                "BidPlaced",
                "AuctionFinalized",
                "TaskAssigned",
                "ResultSubmitted",
                "TaskCompleted",
            ):
                assert step in timeline, step
            assert timeline.index("TaskCreated") < timeline.index("TaskAssigned") < timeline.index("TaskCompleted")
            assert timeline.index("TaskCreated") < timeline.index("LLM call: fit")  # an event before its work
            for celery_task in ("consider", "execute", "evaluate"):
                assert f"<strong>{celery_task}</strong>" in timeline, celery_task
            for role in ("fit", "execute", "score"):  # offline provider: 0 tokens, but each call is in the trace
                assert f"LLM call: {role}" in timeline, role
            assert "Settled" in timeline
            assert "weighted price" in page and "winner" in page
            assert "<dt>score</dt><dd>" in page and "passed" in page and "<dt>payment</dt><dd>1" not in page
            assert "ETH" in page[page.index("<dt>payment</dt>") :][:80]
            assert "flag-failed" not in page

            agent = chromium("--dump-dom", f"{base}/agents/{winner}").stdout
            assert "<svg" in agent and "earnings (cumulative ETH) by block" in agent and "<polyline" in agent

            screenshot(base + "/", artifacts_out / "dashboard-market.png")
            screenshot(f"{base}/tasks/{ids[0]}", artifacts_out / "dashboard-task.png", height=2800)  # whole life
            screenshot(f"{base}/agents/{winner}", artifacts_out / "dashboard-agent.png")
