"""``agentfleet up``: the whole fleet as separate processes on one machine, without Docker.

anvil and redis-server on free ports, the contracts deployed (or reused), the fleet registered, then the
same commands docker-compose.yml runs: the listener, N Celery workers, the solo trainer, beat, Flower and the
dashboard (on the host's loopback).
A process that exits is started again (same command and environment, so the same metrics port) after a
backoff; only Ctrl-C (or SIGTERM) stops the stack, and then every process it started, services last.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import redis
from pydantic import SecretStr

from agentfleet.chain.connect import http_web3
from agentfleet.chain.local import rpc
from agentfleet.chain.session import ChainSession
from agentfleet.directory import AgentDirectory
from agentfleet.files import write_atomically
from agentfleet.profiles import AGENT_TYPES
from agentfleet.protocol.routing import TRAINING, WORKER_QUEUES
from agentfleet.settings import Settings
from shell.fleet import bootstrap_local_fleet
from shell.services import free_port, local_services

LISTENER_METRICS = "AGENTFLEET_LISTENER_METRICS_PORT"
WORKER_METRICS = "AGENTFLEET_WORKER_METRICS_PORT"
DASHBOARD_PASSWORD = "AGENTFLEET_DASHBOARD_PASSWORD"
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 30.0  # seconds before restarting a process that died; doubles each time
STABLE_AFTER = 60.0  # seconds up after which a process counts as healthy again (backoff back to the first)


@dataclass
class Supervised:
    """One process of the stack and how to start it again the same way (same env: same metrics port)."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restarts: int = 0
    backoff: float = BACKOFF_FIRST
    due: float | None = None  # when a dead process is started again

    def start(self) -> None:
        with self.log.open("ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.started, self.due = time.monotonic(), None

    def check(self, now: float) -> str | None:
        """Start a dead process again when its backoff is over; on a fresh death, schedule that and say so.

        One crash (Redis restarting under a worker, an OOM kill) should not take the fleet down, and a process
        that crashes in a loop must not spin: backoff 1 s doubling to 30 s, back to 1 s after 60 s up."""
        if self.due is not None:
            if now >= self.due:
                self.start()
            return None
        if self.proc is None or (code := self.proc.poll()) is None:
            return None
        with suppress(ProcessLookupError, PermissionError):  # what it left of its group (a worker's pool) goes too
            os.killpg(self.proc.pid, signal.SIGKILL)
        if now - self.started >= STABLE_AFTER:
            self.backoff = BACKOFF_FIRST
        delay, self.backoff = self.backoff, min(self.backoff * 2, BACKOFF_MAX)
        self.restarts += 1
        self.due = now + delay
        how = f"signal {-code}" if code < 0 else f"code {code}"
        line = f"{self.name} exited ({how}); restart {self.restarts} in {delay:g} s"
        with self.log.open("a") as log:
            log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} agentfleet up: {line}\n")
        return line


@dataclass
class Stack:
    run_dir: Path
    env: dict[str, str]
    flower_port: int
    dashboard_port: int = 0
    procs: dict[str, Supervised] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)  # process name -> its Prometheus URL
    pids: str = ""  # what run_dir/pids holds

    def spawn(self, name: str, args: list[str], *, metrics_setting: str | None = None) -> None:
        """Start one process (own session, log file); with ``metrics_setting``, on a free metrics port."""
        env = dict(self.env)
        if metrics_setting:
            port = free_port()
            env[metrics_setting] = str(port)
            self.metrics[name] = f"http://127.0.0.1:{port}/metrics"
        self.procs[name] = Supervised(name, args, env, self.run_dir / f"{name}.log")
        self.procs[name].start()
        self.write_pids()

    def supervise(self, say: Callable[[str], object]) -> None:
        """One round: report deaths, restart what is due, keep ``run_dir/pids`` current."""
        for entry in self.procs.values():
            if line := entry.check(time.monotonic()):
                say(line)
        self.write_pids()

    def write_pids(self) -> None:
        """``name=pid`` of every current process (each leads its own process group), for operators and tests."""
        text = "".join(f"{name}={entry.proc.pid}\n" for name, entry in self.procs.items() if entry.proc)
        if self.pids == text:
            return
        self.pids = text
        write_atomically(self.run_dir / "pids", text.encode())

    def stop(self, timeout: float = 20.0) -> None:
        procs = {name: entry.proc for name, entry in self.procs.items() if entry.proc}
        for proc in procs.values():  # dead leaders too: their groups may still hold children
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        for name, proc in procs.items():
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
                print(f"{name} did not stop in {timeout} s: killed", file=sys.stderr)


def _tick(url: str, stop: threading.Event, every: float = 1.0) -> None:
    """Keep the local chain's clock moving like a real chain's: an empty block when none came for a second.
    (anvil mines only on transactions; deadlines would otherwise never pass on an idle chain.)"""
    w3 = http_web3(url)
    while not stop.wait(every):
        try:
            if time.time() - int(w3.eth.get_block("latest")["timestamp"]) >= every:
                rpc(w3, "evm_mine", [])
        except Exception:  # the node is stopping: the loop ends with the stack
            continue


def bin_path(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def run_stack(
    *,
    workers: int,
    run_dir: Path,
    settings: Settings,
    ready: threading.Event | None = None,
    stop: threading.Event | None = None,
    say: Callable[[str], object] = print,
) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    stop = stop or threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with ExitStack() as services:
        server, node = services.enter_context(local_services())
        local = settings.model_copy(
            update={
                "rpc_urls": [node.url],
                "redis_url": SecretStr(server.url),
                "confirmations": 0,
                "contract_addresses_path": run_dir / "contract_addresses.json",
                "models_dir": run_dir / "models",
            }
        )
        client = redis.Redis.from_url(server.url)
        session = ChainSession.open(local, w3=http_web3(node.url), redis_client=client)
        bootstrap_local_fleet(session, AgentDirectory(client), AGENT_TYPES, record_path=local.contract_addresses_path)

        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTFLEET_")}
        env.update(
            {
                "AGENTFLEET_RPC_URLS": node.url,
                "AGENTFLEET_WS_URL": node.ws_url,
                "AGENTFLEET_REDIS_URL": server.url,
                "AGENTFLEET_CONTRACT_ADDRESSES_PATH": str(local.contract_addresses_path),
                "AGENTFLEET_MODELS_DIR": str(local.models_dir),
                "AGENTFLEET_CONFIRMATIONS": "0",
                "AGENTFLEET_KEEPER_INTERVAL": "2",
            }
        )
        env["AGENTFLEET_MNEMONIC"] = settings.mnemonic.get_secret_value()
        if settings.openai_api_key is not None:
            env["OPENAI_API_KEY"] = settings.openai_api_key.get_secret_value()
        if settings.dashboard_password is not None and settings.dashboard_password.get_secret_value():
            env[DASHBOARD_PASSWORD] = settings.dashboard_password.get_secret_value()  # then it asks for it
        stack = Stack(run_dir, env, free_port(), free_port())
        services.callback(stack.stop)
        stack.spawn("listener", [sys.executable, "-m", "chain_listener"], metrics_setting=LISTENER_METRICS)
        for i in range(workers):
            stack.spawn(
                f"worker{i + 1}",
                [
                    bin_path("celery"),
                    "-A",
                    "workers",
                    "worker",
                    "-Q",
                    ",".join(WORKER_QUEUES),
                    "-c",
                    "1",
                    "-n",
                    f"worker{i + 1}@%h",
                    "--loglevel",
                    "INFO",
                ],
                metrics_setting=WORKER_METRICS,
            )
        stack.spawn(
            "trainer",
            [
                bin_path("celery"),
                "-A",
                "workers",
                "worker",
                "-Q",
                TRAINING,
                "-P",
                "solo",
                "-n",
                "trainer@%h",
                "--loglevel",
                "INFO",
            ],
            metrics_setting=WORKER_METRICS,
        )
        stack.spawn(
            "beat",
            [
                bin_path("celery"),
                "-A",
                "workers",
                "beat",
                "--schedule",
                str(run_dir / "beat-schedule"),
                "--loglevel",
                "INFO",
            ],
        )
        stack.spawn(
            "flower",
            [bin_path("celery"), "-A", "workers", "flower", "--address=127.0.0.1", f"--port={stack.flower_port}"],
        )
        stack.spawn(
            "dashboard",
            [
                sys.executable,
                "-m",
                "shell.cli",
                "dashboard",
                "--address",
                "127.0.0.1",
                "--port",
                str(stack.dashboard_port),
            ],
        )
        say(f"chain    {node.url}  (contracts: {local.contract_addresses_path})")
        say(f"redis    {server.url}")
        say(f"flower   http://127.0.0.1:{stack.flower_port}")
        say(f"dashboard http://127.0.0.1:{stack.dashboard_port}")
        say(f"metrics  {', '.join(f'{name} {url}' for name, url in stack.metrics.items())}")
        say(f"logs     {run_dir}/*.log")
        say(f"processes: {', '.join(stack.procs)}; Ctrl-C stops them all")
        secret = {"AGENTFLEET_MNEMONIC", DASHBOARD_PASSWORD}
        shareable = {k: v for k, v in env.items() if k.startswith("AGENTFLEET_") and k not in secret}
        shareable["FLOWER_URL"] = f"http://127.0.0.1:{stack.flower_port}"
        shareable["DASHBOARD_URL"] = f"http://127.0.0.1:{stack.dashboard_port}"
        shareable["METRICS_URLS"] = ",".join(f"{name}={url}" for name, url in stack.metrics.items())
        (run_dir / "env").write_text("".join(f"{k}={v}\n" for k, v in shareable.items()))  # no secrets
        ticking = threading.Thread(target=_tick, args=(node.url, stop), name="clock", daemon=True)
        ticking.start()
        if ready:
            ready.set()
        while not stop.wait(0.5):  # only Ctrl-C/SIGTERM ends the stack; a process that dies is started again
            stack.supervise(say)
        say("stopping the fleet")
