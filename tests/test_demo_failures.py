"""`agentfleet demo` when things go wrong: one sentence, the tasks as they are, a non-zero exit, no traceback and
no process left behind. Also the flaky LLM server (tests/flaky_llm.py) other tests use, checked through the SDK."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from agentfleet.llm import LLMError, LLMOutputError, TaskView
from agentfleet.llm.openai_provider import OpenAIProvider
from testkit.chain import clean_env
from tests.flaky_llm import FlakyLLM
from tests.test_cli import alive, descendants

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "shell.cli"]


@pytest.mark.anvil
def test_demo_with_an_llm_failing_everything_says_why_shows_the_tasks_and_exits_1(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    httpserver.expect_request(re.compile(".*")).respond_with_json({"error": {"message": "boom"}}, status=500)
    env = clean_env() | {"OPENAI_API_KEY": "dummy", "OPENAI_BASE_URL": httpserver.url_for("/v1")}
    args = [*CLI, "demo", "--tasks", "3", "--timeout", "20", "--out", str(tmp_path)]
    demo = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started: set[int] = set()
    while demo.poll() is None:  # every process it starts (redis-server, anvil), to check none outlives it
        started |= descendants(demo.pid)
        time.sleep(0.2)
    out, err = demo.communicate(timeout=120)

    assert demo.returncode == 1, out[-3000:] + err[-3000:]
    assert "Traceback" not in out + err
    reasons = [line for line in out.splitlines() if line.startswith("demo failed: ")]
    assert len(reasons) == 1, out  # one line: the sentence is not wrapped or repeated
    assert "3 of 3 tasks were not final within the 20 s time budget" in reasons[0]
    assert "500" in reasons[0] and "dummy" not in out + err  # the cause named; the key never printed
    assert "3 tasks, provider: openai:" in out
    rows = [line.split("│")[1:5] for line in out.splitlines() if line.startswith("│")]
    assert [(task.strip(), mode.strip(), status.strip()) for task, mode, _tags, status in rows] == [
        ("1", "open", "open"),  # (task, auction, status): the default mixes the modes
        ("2", "sealed", "open"),
        ("3", "open", "open"),
    ]
    assert len(httpserver.log) > 0  # the LLM was asked
    assert started and alive(started) == set(), "processes left behind"


def test_flaky_llm_serves_every_kind_through_the_real_sdk() -> None:
    task = TaskView(1, "Write a literature review", ("research",), 1.0)
    outcomes: list[str] = []
    with FlakyLLM() as llm:
        provider = OpenAIProvider(api_key="sk-flaky-0000", base_url=llm.base_url, max_retries=0, output_attempts=1)
        for _ in range(12):
            try:
                fit, _usage = provider.evaluate_task_fit({"research": 80}, task)
                outcomes.append(f"score {fit.score:g}")
            except LLMOutputError:
                outcomes.append("unusable")
            except LLMError as exc:
                outcomes.append(str(exc).split(": ")[1])
        stats = llm.stats()
    assert outcomes[:6] == [
        "score 72",
        "score 185",
        "unusable",
        "RateLimitError",
        "InternalServerError",
        "APIConnectionError",
    ]
    assert outcomes[6:] == outcomes[:6]  # a cycle per request
    assert stats == {
        "requests": 12,
        "kinds": dict.fromkeys(("valid", "hostile", "garbage", "429", "500", "drop"), 2),
        "operations": {"FitEvaluation": 12},
    }

    with FlakyLLM(bad_ratio=0.5, bad_kinds=("hostile",)) as llm:
        provider = OpenAIProvider(api_key="sk-flaky-0000", base_url=llm.base_url, max_retries=0)
        bids = [provider.calculate_bid_amount({"research": 80}, task, 50, 0)[0].fraction for _ in range(4)]
        scores = [provider.evaluate_task_result(task, "a result")[0].score for _ in range(2)]
    assert bids == [0.6, -3.5, 0.6, -3.5] and scores == [81, -40]


def test_flaky_llm_runs_as_its_own_process() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.flaky_llm", "--bad-ratio", "0"], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        base_url = proc.stdout.readline().strip() if proc.stdout else ""
        assert base_url.startswith("http://127.0.0.1:")
        stats = json.loads(urllib.request.urlopen(f"{base_url}/stats", timeout=5).read())
        assert stats == {"requests": 0, "kinds": {}, "operations": {}}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.anvil
@pytest.mark.slow
def test_demo_with_a_flaky_llm_finishes_every_task_and_exits_0(tmp_path: Path) -> None:
    """Half the answers are bad (hostile values, garbage, 429, 500, dropped connections): re-asks, retries
    and the reconciler still take every task to a final state."""
    with FlakyLLM(bad_ratio=0.5) as llm:
        env = clean_env() | {
            "OPENAI_API_KEY": "sk-flaky-0000",
            "OPENAI_BASE_URL": llm.base_url,
            "AGENTFLEET_LLM_TIMEOUT": "5",
        }
        args = [*CLI, "demo", "--tasks", "6", "--timeout", "240", "--out", str(tmp_path)]
        demo = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        stats = llm.stats()
    out = demo.stdout + demo.stderr
    assert demo.returncode == 0, out[-4000:]
    assert "Traceback" not in out and "sk-flaky-0000" not in out
    rows = [line.split("│")[1:5] for line in demo.stdout.splitlines() if line.startswith("│")]
    statuses = [status.strip() for _task, _mode, _tags, status in rows]
    assert {mode.strip() for _task, mode, _tags, _status in rows} == {"open", "sealed"}  # both auctions ran
    assert len(statuses) == 6 and set(statuses) <= {"completed", "failed", "expired", "cancelled"}, statuses
    print(f"\nflaky demo: {statuses}; LLM {stats}")
