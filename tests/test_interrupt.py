"""Ctrl-C for a command running a whole fleet in one process: bounded in time, nothing left running, even when
the orderly stop hangs (a lock left taken by the code the interrupt landed in, a worker busy in a task)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# A command whose orderly stop hangs: it swallows every KeyboardInterrupt, as a stuck unwinding would.
STUCK = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from shell.interrupt import Interrupts
    from shell.services import RedisServer

    server = RedisServer.start()
    with Interrupts(grace=float(sys.argv[1]), log=Path(sys.argv[2])):
        told = False
        while True:
            try:
                if not told:  # only once the handler is in, and inside the try: the test's Ctrl-C follows at once
                    told = True
                    print(server.proc.pid, flush=True)
                time.sleep(60)
            except KeyboardInterrupt:
                pass
    """
)


def start_stuck(tmp_path: Path, grace: float) -> tuple[subprocess.Popen[str], int]:
    script = tmp_path / "stuck.py"
    script.write_text(STUCK)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(grace), str(tmp_path / "log")],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("presses", [1, 2])
def test_a_stop_that_hangs_is_forced_and_leaves_nothing(tmp_path: Path, presses: int) -> None:
    """One Ctrl-C: forced after the grace period; a second Ctrl-C: forced at once. Exit 0, services killed,
    the threads' stacks in the log (why the stop hung)."""
    grace = 2.0 if presses == 1 else 300.0
    proc, redis_pid = start_stuck(tmp_path, grace)
    began = time.monotonic()
    for _ in range(presses):
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
    out, _ = proc.communicate(timeout=30)
    took = time.monotonic() - began
    assert proc.returncode == 0
    assert "interrupted" in out and "killed the 1 service(s) left" in out
    assert gone(redis_pid)
    assert "time.sleep" in (tmp_path / "log").read_text() or "stuck.py" in (tmp_path / "log").read_text()
    assert took < (grace + 10 if presses == 1 else 10)
    if presses == 1:
        assert took >= grace  # the orderly stop had its time first


def test_an_orderly_stop_cancels_the_watchdog_and_puts_the_handler_back() -> None:
    from shell.interrupt import Interrupts

    with Interrupts(grace=0.5) as interrupts, pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
    assert interrupts.seen == [signal.SIGINT]
    time.sleep(1)  # past the grace period: still alive (the watchdog was cancelled)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
