"""`agentfleet up`: the fleet as local processes; tasks flow to completion; Ctrl-C leaves nothing running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentfleet.chain.session import ChainSession
from agentfleet.settings import Settings

pytestmark = [pytest.mark.anvil, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "agentfleet.cli"]


def leftovers(run_dir: Path) -> list[str]:
    out = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(run_dir) in line]


def test_up_with_three_workers_completes_tasks_and_stops_cleanly(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTFLEET_", "OPENAI_"))}
    up = subprocess.Popen([*CLI, "up", "--workers", "3", "--run-dir", str(run_dir)], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while not (run_dir / "env").exists():
            assert up.poll() is None, up.stdout.read() if up.stdout else ""
            assert time.monotonic() < deadline, "the stack did not start"
            time.sleep(0.2)
        fleet_env = dict(line.split("=", 1) for line in (run_dir / "env").read_text().splitlines())
        created = subprocess.run([*CLI, "create-tasks", "--count", "3", "--window", "6"], cwd=ROOT,
                                 env={**env, **fleet_env}, capture_output=True, text=True, timeout=120)  # fmt: skip
        assert created.returncode == 0, created.stderr
        settings = Settings(**{k.removeprefix("AGENTFLEET_").lower(): v for k, v in fleet_env.items()})
        session = ChainSession.open(settings)
        deadline = time.monotonic() + 120
        while not all(session.tasks.status_of(t) == 4 for t in (1, 2, 3)):
            assert up.poll() is None, "the stack died"
            assert time.monotonic() < deadline, [session.tasks.status_of(t) for t in (1, 2, 3)]
            time.sleep(0.5)
        assert leftovers(run_dir)  # the fleet's processes are running
    finally:
        up.send_signal(signal.SIGINT)
        code = up.wait(timeout=60)
    assert code == 0
    time.sleep(0.5)
    assert leftovers(run_dir) == []
