"""Redis killed (-9) and restarted under a running worker: the worker stays up and keeps working.

kombu/celery 5.7.0 (the latest releases) let a worker die here with
``Unrecoverable error: AttributeError("'NoneType' object has no attribute 'hostname'")``; workers/app.py turns
that into a broker connection error, which celery survives. The first test shows the exact state and error;
the second kills a real redis-server under a real ``celery -A workers worker`` a few times (the crash was
intermittent), with a task running at each kill so its ack lands on the dead connection.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from kombu import Connection
from kombu.transport import redis as kombu_redis

from agentfleet.protocol import routing
from agentfleet.protocol.app import app
from shell.services import RedisServer, free_port
from testkit.chain import clean_env
from testkit.wait import wait_until

ROOT = Path(__file__).resolve().parent.parent
CELERY = str(Path(sys.executable).with_name("celery"))
ROUNDS = 3


@app.task(name="tests.redis_restart.nap")
def nap(seconds: float) -> float:
    """A task still running when Redis dies: its late ack goes to a connection that no longer exists."""
    time.sleep(seconds)
    return seconds


def test_an_ack_on_a_torn_down_connection_is_a_connection_error(redis_server: RedisServer) -> None:
    with Connection(redis_server.url) as conn:
        queue = conn.SimpleQueue("restart-probe")
        queue.put({"n": 1})
        message = queue.get(timeout=5)
        channel, transport = message.channel, message.channel.connection
        transport.client = None  # what a reconnect leaves behind: a transport without client, a channel without pool
        channel._pool = None
        try:
            original = kombu_redis.Channel._connparams.__wrapped__  # type: ignore[attr-defined]
            with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'hostname'"):
                original(channel)  # kombu's own code: once this stops raising, kombu is fixed and the guard can go
            message.ack_log_error(logging.getLogger(__name__), conn.connection_errors)  # logged, not raised
            channel.connection = None  # after a clean close the channel has no transport at all: same answer
            with pytest.raises(redis.exceptions.ConnectionError):
                channel.pool  # noqa: B018 - the property is the call under test
        finally:
            channel.connection, transport.client = transport, conn  # let the connection close normally


def start_redis(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    """redis-server WITH appendonly: queued and unacked messages survive the kill like on a real server."""
    return RedisServer.start(port=port, appendonly=True, workdir=workdir).proc


def task_state(url: str, task_id: str) -> str | None:
    """The task's state as the worker wrote it to the result back end (None: nothing yet, or Redis down)."""
    try:
        with redis.Redis.from_url(url, socket_timeout=2) as client:
            raw = client.get(f"celery-task-meta-{task_id}")
    except redis.exceptions.RedisError:
        return None
    return json.loads(raw)["status"] if raw else None


def send(url: str, name: str, *args: object) -> str:
    """Publish with a fresh client: the test's own connections die with the server too."""
    sender = Celery(broker=url, backend=url)
    try:
        return sender.send_task(name, args=args, queue=routing.KEEPER).id
    finally:
        sender.close()


@pytest.fixture
def redis_and_worker(tmp_path: Path) -> Iterator[tuple[dict[str, subprocess.Popen[bytes]], int, Path]]:
    port = free_port()
    procs = {"redis": start_redis(port, tmp_path)}
    env = {**clean_env(), "AGENTFLEET_REDIS_URL": f"redis://127.0.0.1:{port}/0", "PYTHONPATH": str(ROOT)}
    log = tmp_path / "worker.log"
    with log.open("wb") as out:  # the options of `agentfleet up`'s workers: prefork, gossip, mingle, events
        procs["worker"] = subprocess.Popen(
            [
                CELERY,
                "-A",
                "workers",
                "worker",
                "-Q",
                routing.KEEPER,
                "-c",
                "1",
                "-n",
                "restart@%h",
                "--loglevel",
                "INFO",
                "-I",
                "tests.test_redis_restart",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield procs, port, log
    finally:
        worker = procs["worker"]
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(timeout=5)
        procs["redis"].kill()
        procs["redis"].wait(timeout=5)


@pytest.mark.slow
def test_worker_survives_redis_killed_and_restarted(
    redis_and_worker: tuple[dict[str, subprocess.Popen[bytes]], int, Path],
) -> None:
    procs, port, log = redis_and_worker
    url = f"redis://127.0.0.1:{port}/0"
    worker = procs["worker"]

    def log_tail() -> str:
        return log.read_text(errors="replace")[-4000:]

    first = send(url, "celery.accumulate", "ready")
    wait_until(
        lambda: task_state(url, first) == "SUCCESS",
        60,
        lambda: f"the worker never served a task\n{log_tail()}",
        interval=0.1,
    )
    for round_ in range(ROUNDS):
        running = send(url, "tests.redis_restart.nap", 3.0)
        wait_until(
            lambda running=running: task_state(url, running) == "STARTED",
            30,
            lambda: f"nap did not start\n{log_tail()}",
            interval=0.1,
        )
        procs["redis"].send_signal(signal.SIGKILL)
        procs["redis"].wait(timeout=5)
        time.sleep(2)
        procs["redis"] = start_redis(port, log.parent)
        probe = send(url, "celery.accumulate", round_)
        wait_until(
            lambda probe=probe: task_state(url, probe) == "SUCCESS" or worker.poll() is not None,
            60,
            lambda round_=round_: f"round {round_}: no new task processed after the restart\n{log_tail()}",
            interval=0.1,
        )
        assert worker.poll() is None, f"round {round_}: the worker exited ({worker.returncode})\n{log_tail()}"
    assert "Unrecoverable error" not in log.read_text(errors="replace"), log_tail()
