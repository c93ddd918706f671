"""``agentfleet up``: the whole fleet as separate processes on one machine, without Docker.

anvil and redis-server on free ports, the contracts deployed (or reused), the fleet registered, then the
same commands docker-compose.yml runs: the listener, N Celery workers, the solo trainer, beat and Flower.
Ctrl-C (or SIGTERM) stops every process it started, services last.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import redis
from pydantic import SecretStr

from agentfleet.chain.connect import http_web3
from agentfleet.chain.session import ChainSession
from agentfleet.directory import AgentDirectory
from agentfleet.fleet import bootstrap_local_fleet
from agentfleet.profiles import AGENT_TYPES
from agentfleet.services import free_port, local_services
from agentfleet.settings import Settings

LISTENER_METRICS = "AGENTFLEET_LISTENER_METRICS_PORT"
WORKER_METRICS = "AGENTFLEET_WORKER_METRICS_PORT"
AGENT_QUEUES = "agent.research,agent.development,agent.analytics,agent.creative,agent.blockchain,evaluation,keeper"


@dataclass
class Stack:
    run_dir: Path
    env: dict[str, str]
    flower_port: int
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)  # process name -> its Prometheus URL

    def spawn(self, name: str, args: list[str], *, metrics_setting: str | None = None) -> None:
        """Start one process (own session, log file); with ``metrics_setting``, on a free metrics port."""
        env = dict(self.env)
        if metrics_setting:
            port = free_port()
            env[metrics_setting] = str(port)
            self.metrics[name] = f"http://127.0.0.1:{port}/metrics"
        log = open(self.run_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)  # fmt: skip

    def stop(self, timeout: float = 20.0) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
                print(f"{name} did not stop in {timeout} s: killed", file=sys.stderr)


def _tick(url: str, stop: threading.Event, every: float = 1.0) -> None:
    """Keep the local chain's clock moving like a real chain's: an empty block when none came for a second.
    (anvil mines only on transactions; deadlines would otherwise never pass on an idle chain.)"""
    import time

    w3 = http_web3(url)
    while not stop.wait(every):
        try:
            if time.time() - int(w3.eth.get_block("latest")["timestamp"]) >= every:
                w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        except Exception:  # the node is stopping: the loop ends with the stack
            continue


def bin_path(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def run_stack(*, workers: int, run_dir: Path, settings: Settings, ready: threading.Event | None = None,
              stop: threading.Event | None = None, say=print) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    run_dir.mkdir(parents=True, exist_ok=True)
    stop = stop or threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with ExitStack() as services:
        server, node = services.enter_context(local_services())
        local = settings.model_copy(update={
            "rpc_urls": [node.url], "redis_url": SecretStr(server.url), "confirmations": 0,
            "contract_addresses_path": run_dir / "contract_addresses.json", "models_dir": run_dir / "models",
        })  # fmt: skip
        client = redis.Redis.from_url(server.url)
        session = ChainSession.open(local, w3=http_web3(node.url), redis_client=client)
        bootstrap_local_fleet(session, AgentDirectory(client), AGENT_TYPES, record_path=local.contract_addresses_path)

        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTFLEET_")}
        env.update({
            "AGENTFLEET_RPC_URLS": node.url, "AGENTFLEET_WS_URL": node.ws_url, "AGENTFLEET_REDIS_URL": server.url,
            "AGENTFLEET_CONTRACT_ADDRESSES_PATH": str(local.contract_addresses_path),
            "AGENTFLEET_MODELS_DIR": str(local.models_dir), "AGENTFLEET_CONFIRMATIONS": "0",
            "AGENTFLEET_KEEPER_INTERVAL": "2",
        })  # fmt: skip
        env["AGENTFLEET_MNEMONIC"] = settings.mnemonic.get_secret_value()
        if settings.openai_api_key is not None:
            env["OPENAI_API_KEY"] = settings.openai_api_key.get_secret_value()
        stack = Stack(run_dir, env, free_port())
        services.callback(stack.stop)
        stack.spawn("listener", [sys.executable, "-m", "chain_listener"], metrics_setting=LISTENER_METRICS)
        for i in range(workers):
            stack.spawn(f"worker{i + 1}", [bin_path("celery"), "-A", "workers", "worker", "-Q", AGENT_QUEUES,
                                           "-c", "1", "-n", f"worker{i + 1}@%h", "--loglevel", "INFO"],
                        metrics_setting=WORKER_METRICS)  # fmt: skip
        stack.spawn("trainer", [bin_path("celery"), "-A", "workers", "worker", "-Q", "training", "-P", "solo",
                                "-n", "trainer@%h", "--loglevel", "INFO"], metrics_setting=WORKER_METRICS)  # fmt: skip
        stack.spawn("beat", [bin_path("celery"), "-A", "workers", "beat", "--schedule",
                             str(run_dir / "beat-schedule"), "--loglevel", "INFO"])  # fmt: skip
        stack.spawn("flower", [bin_path("celery"), "-A", "workers", "flower", "--address=127.0.0.1",
                               f"--port={stack.flower_port}"])  # fmt: skip
        say(f"chain    {node.url}  (contracts: {local.contract_addresses_path})")
        say(f"redis    {server.url}")
        say(f"flower   http://127.0.0.1:{stack.flower_port}")
        say(f"metrics  {', '.join(f'{name} {url}' for name, url in stack.metrics.items())}")
        say(f"logs     {run_dir}/*.log")
        say(f"processes: {', '.join(stack.procs)}; Ctrl-C stops them all")
        shareable = {k: v for k, v in env.items() if k.startswith("AGENTFLEET_") and k != "AGENTFLEET_MNEMONIC"}
        shareable["FLOWER_URL"] = f"http://127.0.0.1:{stack.flower_port}"
        shareable["METRICS_URLS"] = ",".join(f"{name}={url}" for name, url in stack.metrics.items())
        (run_dir / "env").write_text("".join(f"{k}={v}\n" for k, v in shareable.items()))  # no secrets
        ticking = threading.Thread(target=_tick, args=(node.url, stop), name="clock", daemon=True)
        ticking.start()
        if ready:
            ready.set()
        while not stop.wait(1.0):
            dead = [name for name, proc in stack.procs.items() if proc.poll() is not None]
            if dead:
                say(f"stopping: {', '.join(dead)} exited (see its log)")
                break
        say("stopping the fleet")
