"""Worker processes as people run them (``celery -A workers worker``, ``celery -A workers call``), a market
for them on anvil, and an LLM server slow enough to kill a worker inside its call."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from werkzeug import Request, Response

from agentfleet.chain.local import fund
from agentfleet.chain.session import ChainSession
from agentfleet.directory import AgentDirectory
from agentfleet.profiles import AGENT_TYPES
from agentfleet.protocol import routing
from shell.fleet import register_fleet
from testkit.chain import ETH, deployed_market, fleet_env
from testkit.llm import completion

ROOT = Path(__file__).resolve().parent.parent
CELERY = str(Path(sys.executable).with_name("celery"))
RESEARCH = routing.agent_queue("research")
DEVELOPMENT = routing.agent_queue("development")


@contextmanager
def process_market(
    tmp_path: Path, redis_url: str, *, agents: int = 2, **settings: object
) -> Iterator[tuple[ChainSession, dict[str, str], redis.Redis]]:
    """A market on anvil with the first ``agents`` agent types registered as this fleet's, a clean Redis, and
    the environment a worker process needs (``settings`` become AGENTFLEET_* variables, see ``fleet_env``)."""
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    with deployed_market("anvil", tmp_path, register=0) as session:
        for number in range(agents):
            fund(session.client.w3, session.agent(number).address, 100 * ETH)
        register_fleet(session, AgentDirectory(client), AGENT_TYPES[:agents])
        yield session, fleet_env(session, redis_url, **settings), client


def worker(
    env: dict[str, str],
    name: str,
    queues: str = f"{RESEARCH},{DEVELOPMENT}",
    metrics_port: int | None = None,
    log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """``celery -A workers worker -P solo`` on ``queues`` (logs to ``log`` at INFO when given, else nowhere)."""
    if metrics_port is not None:
        env = {**env, "AGENTFLEET_WORKER_METRICS_PORT": str(metrics_port)}
    args = [CELERY, "-A", "workers", "worker", "-P", "solo", "-Q", queues, "-n", f"{name}@%h"]
    args += ["--without-gossip", "--without-mingle", "--loglevel", "INFO" if log is not None else "WARNING"]
    if log is None:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with log.open("ab") as output:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)


def stop(*procs: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a warm shutdown), then SIGKILL whatever is still running 15 s later."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def celery_call(env: dict[str, str], kwargs: dict[str, object], queue: str = RESEARCH) -> str:
    """``celery -A workers call`` of consider; returns the task id it printed."""
    result = subprocess.run(
        [CELERY, "-A", "workers", "call", routing.CONSIDER, "--kwargs", json.dumps(kwargs), "--queue", queue],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


class SlowLLM:
    """An OpenAI-compatible server whose first answer takes long enough to kill the worker waiting on it."""

    def __init__(self, first_delay: float) -> None:
        self.calls = 0
        self.first_delay = first_delay

    def __call__(self, request: Request) -> Response:
        self.calls += 1
        if self.calls == 1:
            time.sleep(self.first_delay)
        body = json.loads(request.data)
        schema = json.dumps(body.get("response_format", {}))
        if "fraction" in schema:
            content = '{"fraction": 0.6, "reasoning": "fair"}'
        elif "content" in schema:
            content = '{"content": "the deliverable"}'
        else:
            content = '{"score": 90, "reasoning": "fits"}'
        return Response(json.dumps(completion(content)), content_type="application/json")
