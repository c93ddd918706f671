"""`agentfleet up`: the fleet as local processes; Flower shows it in a real browser; a killed worker is started
again; tasks flow to completion; Ctrl-C leaves nothing running. One stack serves the module (starting it is the
slow part); the Ctrl-C test runs last and stops it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agentfleet.chain.session import ChainSession
from agentfleet.protocol import routing
from agentfleet.protocol.status import TaskStatus
from agentfleet.settings import Settings
from testkit import browser
from testkit.chain import clean_env
from testkit.wait import wait_until

pytestmark = [pytest.mark.anvil, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "shell.cli"]
CHROMIUM_FLAGS = ("--virtual-time-budget=5000", "--window-size=1400,900")


@dataclass
class RunningStack:
    proc: subprocess.Popen[str]
    run_dir: Path
    env: dict[str, str]  # the caller's environment plus the fleet's (run/env)
    flower_url: str
    groups: set[int] = field(default_factory=set)  # every process group the stack's processes led, restarts too

    def pids(self) -> dict[str, int]:
        pids = {
            name: int(pid) for name, pid in (line.split("=") for line in (self.run_dir / "pids").read_text().split())
        }
        self.groups.update(pids.values())
        return pids


def leftovers(stack: RunningStack) -> list[str]:
    """Processes that name the run folder or belong to a process group the stack started (a worker's pool too)."""
    out = subprocess.run(["ps", "-ww", "-eo", "pgid=,args="], capture_output=True, text=True).stdout
    rows = [line.strip().split(None, 1) for line in out.splitlines() if line.strip()]
    return [" ".join(row) for row in rows if int(row[0]) in stack.groups or str(stack.run_dir) in row[-1]]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    run_dir = tmp_path_factory.mktemp("up") / "run"
    env = clean_env()
    up = subprocess.Popen(
        [*CLI, "up", "--workers", "3", "--run-dir", str(run_dir)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def started() -> bool:
            if (run_dir / "env").exists():
                return True
            assert up.poll() is None, up.stdout.read() if up.stdout else ""
            return False

        wait_until(started, 90, "the stack did not start", interval=0.2)
        fleet_env = dict(line.split("=", 1) for line in (run_dir / "env").read_text().splitlines())
        running = RunningStack(up, run_dir, {**env, **fleet_env}, fleet_env["FLOWER_URL"])
        running.pids()
        yield running
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGINT)
            up.wait(timeout=60)


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    return browser.chromium(*args, flags=CHROMIUM_FLAGS)


def test_flower_in_chromium_lists_the_workers_and_the_profile_queues(stack: RunningStack, artifacts_out: Path) -> None:
    expected = {"worker1@", "worker2@", "worker3@", "trainer@"}
    shown: dict[str, object] = {}

    def listed() -> bool:  # workers announce themselves to Flower through events a few seconds after they start
        page = chromium("--dump-dom", f"{stack.flower_url}/workers").stdout
        counted = re.search(r"Online workers</p>\s*<p[^>]*>(\d+)<", page)
        shown["seen"], shown["online"] = {name for name in expected if name in page}, counted and counted.group(1)
        return shown["seen"] == expected and shown["online"] == "4"

    wait_until(listed, 60, lambda: f"Flower lists {shown['seen']} (online: {shown['online']})", interval=2)
    shot = artifacts_out / "flower-workers.png"
    done = chromium(f"--screenshot={shot}", f"{stack.flower_url}/workers")
    assert done.returncode == 0 and shot.stat().st_size > 10_000, done.stderr[-2000:]

    page: dict[str, str] = {}

    def all_queues() -> bool:  # Flower asks the workers for their queues; a slow one answers on a later load
        page["broker"] = chromium("--dump-dom", f"{stack.flower_url}/broker").stdout
        page["missing"] = ", ".join(q for q in routing.ALL_QUEUES if f"<td>{q}</td>" not in page["broker"])
        return not page["missing"]

    wait_until(all_queues, 60, lambda: f"queues missing from Flower's broker page: {page['missing']}", interval=2)
    broker = page["broker"]
    assert "redis://:**@" in broker or "redis://127.0.0.1" in broker  # a password would be masked
    chromium(f"--screenshot={artifacts_out / 'flower-broker.png'}", f"{stack.flower_url}/broker")

    wait_until(  # beat sends it every 2 s
        lambda: routing.FINALIZE_DUE in chromium("--dump-dom", f"{stack.flower_url}/tasks").stdout,
        30,
        "Flower's tasks page shows no task by name",
        interval=2,
    )
    chromium(f"--screenshot={artifacts_out / 'flower-tasks.png'}", f"{stack.flower_url}/tasks")


def answers(url: str) -> bool:
    try:
        return urllib.request.urlopen(url, timeout=5).status == 200
    except OSError:
        return False


def test_a_killed_worker_is_started_again_on_its_metrics_port(stack: RunningStack) -> None:
    old = stack.pids()["worker2"]
    os.killpg(old, signal.SIGKILL)  # the worker and its pool, as the OOM killer or a crash would

    def restarted() -> bool:
        if stack.pids()["worker2"] != old:
            return True
        assert stack.proc.poll() is None, "the stack stopped when one worker died"
        return False

    wait_until(restarted, 10, "worker2 was not started again", interval=0.2)
    os.kill(stack.pids()["worker2"], 0)  # alive
    log = (stack.run_dir / "worker2.log").read_text(errors="replace")
    assert "worker2 exited (signal 9); restart 1 in 1 s" in log

    metrics = dict(item.split("=", 1) for item in stack.env["METRICS_URLS"].split(","))["worker2"]
    ping = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers",
        "inspect",
        "ping",
        "-d",
        f"worker2@{socket.gethostname()}",
        "--timeout",
        "5",
    ]
    wait_until(
        lambda: answers(metrics) and subprocess.run(ping, cwd=ROOT, env=stack.env, capture_output=True).returncode == 0,
        90,
        f"the new worker2 does not answer on {metrics} or to ping",
        interval=2,
    )
    assert stack.proc.poll() is None


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return sum(v for (n, lab), v in samples.items() if n == name and set(labels.items()) <= lab)


def check_metrics(urls: dict[str, str]) -> None:
    """Each process serves its own endpoint; together they tell what the fleet did."""
    assert set(urls) == {"listener", "worker1", "worker2", "worker3", "trainer"}
    deadline = time.monotonic() + 30
    while True:  # the trainer's outcomes arrive shortly after the tasks complete
        workers = [scrape(urls[f"worker{i}"]) for i in (1, 2, 3)]
        trainer, listener = scrape(urls["trainer"]), scrape(urls["listener"])
        trained = total(trainer, "agentfleet_worker_tasks_total", task=routing.RECORD_OUTCOME, outcome="success")
        if trained >= 3 or time.monotonic() > deadline:
            break
        time.sleep(1)
    consider = routing.CONSIDER
    assert sum(total(w, "agentfleet_worker_results_total", task=consider, status="bid") for w in workers) >= 3
    assert sum(total(w, "agentfleet_worker_task_seconds_count", task=consider) for w in workers) >= 3
    assert (
        sum(total(w, "agentfleet_worker_results_total", task=routing.EVALUATE, status="completed") for w in workers)
        == 3
    )
    assert trained >= 3, trainer
    assert total(listener, "agentfleet_listener_events_total", event="TaskCreated") == 3


def test_tasks_flow_to_completion_and_ctrl_c_stops_everything(stack: RunningStack) -> None:
    created = subprocess.run(
        [*CLI, "create-tasks", "--count", "3", "--window", "6"],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    fleet = {k.removeprefix("AGENTFLEET_").lower(): v for k, v in stack.env.items() if k.startswith("AGENTFLEET_")}
    session = ChainSession.open(Settings(**fleet))
    try:

        def completed() -> bool:
            if all(session.tasks.status_of(t) == TaskStatus.COMPLETED for t in (1, 2, 3)):
                return True
            assert stack.proc.poll() is None, "the stack died"
            return False

        wait_until(completed, 120, lambda: str([session.tasks.status_of(t) for t in (1, 2, 3)]), interval=0.5)
        assert leftovers(stack)  # the fleet's processes are running
        market = urllib.request.urlopen(stack.env["DASHBOARD_URL"] + "/", timeout=30).read().decode()
        assert all(f'href="/tasks/{t}"' in market for t in (1, 2, 3)), market[-3000:]  # `up` serves the dashboard
        check_metrics(dict(item.split("=", 1) for item in stack.env["METRICS_URLS"].split(",")))
    finally:
        stack.proc.send_signal(signal.SIGINT)
        code = stack.proc.wait(timeout=60)
    assert code == 0
    time.sleep(0.5)
    assert leftovers(stack) == []
