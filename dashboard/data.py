"""The dashboard's read models: the market, a task's timeline, the agents and the fleet, as plain dataclasses.

Every number comes from where the fleet already keeps it: the chain (tasks, bids, settlements, reputation), the
listener's event stream (throughput), the task's trace (``agentfleet.trace``: what each process did), the work
ledger, the usage keys (LLM tokens and cost), the directory and the models folder. Nothing here writes.

Outages: each read goes through :class:`Reads`, which turns a Redis or chain error into one line for the page's
banner ("Redis unreachable: ...", "chain RPC unreachable: ...") and a default value, so a page renders with what
it could read instead of failing. After the first error of a source in one request its other reads are skipped
(no page waits for a dead server more than once). Free text (task texts, results, LLM and failure reasons) is
scrubbed of the fleet's secrets here and escaped by the templates.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import redis
from web3 import Web3

from agentfleet import policy
from agentfleet.bidding.sealed import BidBook
from agentfleet.chain.connect import connect
from agentfleet.chain.market import tag_text
from agentfleet.chain.session import ChainSession
from agentfleet.content import ResultStore
from agentfleet.directory import AgentDirectory, FleetAgent
from agentfleet.protocol import keys, routing
from agentfleet.protocol.status import AuctionMode, TaskStatus
from agentfleet.runtime import secrets_of
from agentfleet.settings import Settings, redact_url
from agentfleet.trace import TaskTrace, TraceEntry

T = TypeVar("T")
Entry = tuple[str, dict[str, str]]  # a stream entry: its id and its fields, as text
WEI = 10**18
MARKET_LIMIT = 200  # newest tasks the market page reads from the chain
STREAM_SCAN = 5000  # newest event-stream entries the throughput chart reads
TEXT_PREVIEW = 160  # characters of a task text in the market table
TEXT_FULL = 4000  # characters of a task text or result on the task page
PING_CACHE_SECONDS = 5.0
MIN_WINDOW = 600.0  # seconds: the throughput chart shows at least the last ten minutes
OPEN_GRACE = 30  # seconds past its bidding deadline before an unfinalized auction counts as stuck
EVENT_STATUS = {  # what an event in the stream says about its task's status (when the chain is unreachable)
    "TaskCreated": "open",
    "TaskAssigned": "assigned",
    "ResultSubmitted": "submitted",
    "TaskCompleted": "completed",
    "TaskCancelled": "cancelled",
    "TaskExpired": "expired",
}
ETH_ARGS = {"reward", "amount", "price", "payment", "refund"}


def eth(wei: int | None) -> float:
    return (wei or 0) / WEI


def status_label(value: int) -> str:
    try:
        return TaskStatus(value).name.lower()
    except ValueError:
        return f"unknown ({value})"


# --- sources and outages ------------------------------------------------------------------------------------
class Sources:
    """What the dashboard reads from: one Redis client, a chain session opened on first use (and again after
    the node failed), the Celery app for worker pings (cached a few seconds)."""

    def __init__(
        self,
        settings: Settings,
        *,
        redis_client: redis.Redis | None = None,
        celery_app: Any = None,
        rpc_timeout: float = 3.0,
    ) -> None:
        self.settings = settings
        self.redis = redis_client or redis.Redis.from_url(
            settings.redis_url.get_secret_value(), socket_timeout=3, socket_connect_timeout=2
        )
        self.rpc_timeout = rpc_timeout
        self._celery_app = celery_app
        self._session: ChainSession | None = None
        self._lock = threading.Lock()
        self._pings: tuple[float, dict[str, Any]] | None = None
        self._secrets = [s for s in secrets_of(settings) if s]
        self._urls = [(url, redact_url(url)) for url in settings.rpc_urls]

    def session(self) -> ChainSession:
        with self._lock:
            if self._session is None:
                w3 = connect(self.settings.rpc_urls, timeout=self.rpc_timeout, expected_chain_id=self.settings.chain_id)
                self._session = ChainSession.open(self.settings, w3=w3)
            return self._session

    def forget_session(self) -> None:
        """After a chain error: connect again next time (another RPC URL may answer)."""
        with self._lock:
            self._session = None

    def celery(self) -> Any:
        if self._celery_app is None:
            self._celery_app = _celery_app(self.settings)
        return self._celery_app

    def pings(self) -> dict[str, Any]:
        """``app.control.ping(timeout=1)``, cached for a few seconds (each ping waits a second for answers)."""
        now = time.monotonic()
        if self._pings is not None and now - self._pings[0] < PING_CACHE_SECONDS:
            return self._pings[1]
        answers: dict[str, Any] = {}
        for reply in self.celery().control.ping(timeout=1.0) or []:
            answers.update(reply)
        self._pings = (now, answers)
        return answers

    def scrub(self, text: Any) -> str:
        """A text with every configured secret (and RPC URL with its path) removed."""
        cleaned = policy.scrub(str(text), self._secrets)
        for url, shown in self._urls:
            if len(url) >= 6:
                cleaned = cleaned.replace(url, shown)
        return cleaned


def _celery_app(settings: Settings) -> Any:
    """A Celery app of its own on the settings' broker (only to ping workers): it gives up on a dead broker
    in seconds instead of retrying the way a worker does."""
    from celery import Celery

    from agentfleet.protocol.celeryconfig import broker_settings, broker_url_of

    app = Celery("agentfleet-dashboard")
    app.config_from_object("agentfleet.protocol.celeryconfig")
    app.conf.update(broker_settings(broker_url_of(settings), settings))
    app.conf.result_backend = settings.redis_url.get_secret_value()
    app.conf.broker_connection_timeout = 2
    app.conf.broker_connection_max_retries = 1
    app.conf.broker_connection_retry_on_startup = False
    return app


class Reads:
    """One request's reads: each either returns its value or records why not, for the page's banner."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources
        self.problems: list[str] = []
        self.down: set[str] = set()

    def redis(self, read: Callable[[redis.Redis], T], default: Any) -> T:
        if "redis" in self.down:
            return default
        try:
            return read(self.sources.redis)
        except redis.RedisError as exc:
            self._fail("redis", f"Redis unreachable: {self._brief(exc)}")
            return default

    def chain(self, read: Callable[[ChainSession], T], default: Any) -> T:
        if "chain" in self.down:
            return default
        try:
            return read(self.sources.session())
        except Exception as exc:  # web3 raises connection, timeout, decoding and ABI errors of many types
            self.sources.forget_session()
            self._fail("chain", f"chain RPC unreachable: {self._brief(exc)}")
            return default

    def other(self, name: str, read: Callable[[], T], default: Any) -> T:
        if name in self.down:
            return default
        try:
            return read()
        except Exception as exc:  # the broker or a file: the page still renders
            self._fail(name, f"{name} unreachable: {self._brief(exc)}")
            return default

    @property
    def chain_ok(self) -> bool:
        return "chain" not in self.down

    @property
    def redis_ok(self) -> bool:
        return "redis" not in self.down

    def _fail(self, source: str, line: str) -> None:
        self.down.add(source)
        self.problems.append(line)

    def _brief(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}"
        return self.sources.scrub(text)[:300]


# --- shared facts ----------------------------------------------------------------------------------------------
def _names(reads: Reads) -> dict[str, FleetAgent]:
    return reads.redis(lambda r: {a.address.lower(): a for a in AgentDirectory(r).all()}, {})


def _logs(session: ChainSession, contract: Any, event: str, **filters: Any) -> list[Any]:
    deployment = session.client.deployment
    first = deployment.deployment_block if deployment is not None else 0
    kwargs: dict[str, Any] = {"from_block": first}
    if filters:
        kwargs["argument_filters"] = filters
    return list(getattr(contract.events, event)().get_logs(**kwargs))


def _hex(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    text = value.to_0x_hex() if hasattr(value, "to_0x_hex") else str(value)
    return text if text.startswith("0x") else "0x" + text


def _event_id(log: Any) -> str:
    return f"{_hex(log['transactionHash'])}:{int(log['logIndex'])}".lower()


# --- market ----------------------------------------------------------------------------------------------------
@dataclass
class TaskRow:
    id: int
    status: str
    mode: str
    requester: str
    assignee: str | None
    reward_eth: float
    price_eth: float
    score: int | None
    tags: list[str]
    text: str
    stuck: str | None = None


@dataclass
class MarketFilters:
    tag: str = ""
    requester: str = ""
    min_reward: float = 0.0
    status: str = ""

    def keep(self, row: TaskRow) -> bool:
        if self.tag and self.tag.lower() not in {t.lower() for t in row.tags}:
            return False
        if self.requester and row.requester.lower() != self.requester.lower():
            return False
        if self.status and row.status != self.status:
            return False
        return row.reward_eth >= self.min_reward


@dataclass
class MarketView:
    tasks: list[TaskRow]
    counts: dict[str, int]  # status -> tasks (of those read, before filters)
    total: int  # tasks on chain (or in the stream when the chain is down)
    source: str  # "chain" or "event stream"
    throughput: list[tuple[float, int, int]]  # (bucket start, created, completed) from the event stream
    bucket_seconds: int
    tags: list[str]
    requesters: list[str]
    problems: list[str]


def market(sources: Sources, filters: MarketFilters, *, limit: int = MARKET_LIMIT) -> MarketView:
    reads = Reads(sources)
    rows = reads.chain(lambda s: _tasks_from_chain(s, reads, limit), None)
    source = "chain"
    total = len(rows or [])
    if rows is None:
        rows = _tasks_from_stream(reads, limit)
        source = "event stream"
        total = len(rows)
    else:
        total = reads.chain(lambda s: int(s.tasks.task_count()), total)
    counts = Counter(row.status for row in rows)
    entries = reads.redis(lambda r: _stream(r.xrevrange(keys.EVENTS, count=STREAM_SCAN)), [])
    clock = reads.redis(lambda r: _clock(r.time()), None)  # the clock the stream ids come from
    buckets, width = _throughput(entries, clock)
    return MarketView(
        tasks=[row for row in rows if filters.keep(row)],
        counts=dict(sorted(counts.items(), key=lambda kv: _status_order(kv[0]))),
        total=total,
        source=source,
        throughput=buckets,
        bucket_seconds=width,
        tags=sorted({t for row in rows for t in row.tags}),
        requesters=sorted({row.requester for row in rows}),
        problems=reads.problems,
    )


def _status_order(label: str) -> int:
    try:
        return int(TaskStatus[label.upper()])
    except KeyError:
        return 99


def _tasks_from_chain(session: ChainSession, reads: Reads, limit: int) -> list[TaskRow]:
    count = int(session.tasks.task_count())
    now = int(session.client.w3.eth.get_block("latest")["timestamp"])
    review = reads.redis(lambda r: {int(k) for k in r.hkeys(keys.REVIEW)}, set())
    ids = list(range(count, max(0, count - limit), -1))
    texts = _texts(reads, ids)
    rows = []
    for task_id in ids:
        task = session.tasks.get_task(task_id)
        rows.append(_row(task_id, task, texts.get(task_id), now, task_id in review))
    return rows


def _row(task_id: int, task: Any, text: str | None, now: int, in_review: bool) -> TaskRow:
    status = status_label(task.status)
    assignee = None if int(task.assignee, 16) == 0 else str(task.assignee)
    return TaskRow(
        id=task_id,
        status=status,
        mode=AuctionMode(task.mode).label if task.mode in (0, 1) else str(task.mode),
        requester=str(task.requester),
        assignee=assignee,
        reward_eth=eth(task.reward),
        price_eth=eth(task.price),
        score=int(task.score) if task.status in (TaskStatus.COMPLETED, TaskStatus.FAILED) else None,
        tags=[tag_text(t) for t in task.tags],
        text=(text or "")[:TEXT_PREVIEW],
        stuck=_stuck_reason(task, now, in_review),
    )


def _stuck_reason(task: Any, now: int, in_review: bool) -> str | None:
    if task.status == TaskStatus.OPEN and now > int(task.biddingDeadline) + OPEN_GRACE:
        return f"auction {now - int(task.biddingDeadline)} s past its deadline, not finalized"
    if task.status == TaskStatus.ASSIGNED and int(task.executionDeadline) and now > int(task.executionDeadline):
        return f"{now - int(task.executionDeadline)} s past its execution deadline, not expired"
    if task.status == TaskStatus.SUBMITTED and in_review:
        return "waits for a human score (agentfleet decide)"
    return None


def _texts(reads: Reads, ids: list[int]) -> dict[int, str]:
    def read(client: redis.Redis) -> dict[int, str]:
        digests = client.mget([keys.task_content(i) for i in ids]) if ids else []
        known = {i: (d.decode() if isinstance(d, bytes) else str(d)) for i, d in zip(ids, digests, strict=True) if d}
        raw = client.mget([keys.task_text(d) for d in known.values()]) if known else []
        out = {}
        for (task_id, _digest), text in zip(known.items(), raw, strict=True):
            if text is not None:
                out[task_id] = reads.sources.scrub(_text(text))
        return out

    return reads.redis(read, {})


def _tasks_from_stream(reads: Reads, limit: int) -> list[TaskRow]:
    """The market as the listener's event stream tells it (the chain is unreachable): the last status event
    of each task seen there."""
    entries = reads.redis(lambda r: _stream(r.xrange(keys.EVENTS, count=STREAM_SCAN * 4)), [])
    created: dict[int, dict[str, Any]] = {}
    status: dict[int, str] = {}
    for _id, fields in entries:
        message = _message(fields)
        name, args = message.get("name"), message.get("args") or {}
        task_id = args.get("taskId") if isinstance(args, dict) else None
        if not isinstance(task_id, int) or name not in EVENT_STATUS:
            continue
        if name == "TaskCreated":
            created[task_id] = args
        status[task_id] = EVENT_STATUS[name] if name != "TaskCompleted" or args.get("passed") else "failed"
    ids = sorted(created, reverse=True)[:limit]
    texts = _texts(reads, ids)
    return [
        TaskRow(
            id=task_id,
            status=status.get(task_id, "open"),
            mode="sealed" if created[task_id].get("mode") == 1 else "open",
            requester=str(created[task_id].get("requester", "?")),
            assignee=None,
            reward_eth=eth(int(created[task_id].get("reward") or 0)),
            price_eth=0.0,
            score=None,
            tags=[tag_text(str(t)) for t in created[task_id].get("tags") or []],
            text=texts.get(task_id, "")[:TEXT_PREVIEW],
        )
        for task_id in ids
    ]


def _stream(raw: Any) -> list[Entry]:
    """Stream entries with their ids and fields as text."""
    return [(_text(ident), {_text(k): _text(v) for k, v in (fields or {}).items()}) for ident, fields in raw or []]


def _scores(raw: Any) -> list[tuple[str, float]]:
    return [(_text(member), float(score)) for member, score in raw or []]


def _clock(value: Any) -> float:
    """Redis ``TIME`` (seconds, microseconds) as unix seconds."""
    seconds, micros = value
    return int(seconds) + int(micros) / 1e6


def _message(fields: dict[str, str]) -> dict[str, Any]:
    raw = fields.get("event")
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _throughput(entries: list[Entry], now: float | None = None) -> tuple[list[tuple[float, int, int]], int]:
    """Tasks created and completed per time bucket, from the stream entries' ids (the listener's Redis time)."""
    points: list[tuple[float, str]] = []
    for entry_id, fields in entries:
        name = fields.get("name")
        if name in ("TaskCreated", "TaskCompleted"):
            points.append((int(entry_id.split("-")[0]) / 1000, str(name)))
    if not points:
        return [], 60
    last = max(max(p[0] for p in points), now or 0.0)
    first = min(min(p[0] for p in points), last - MIN_WINDOW)
    span = max(last - first, 1.0)
    width = next((w for w in (10, 30, 60, 300, 900, 3600, 21600, 86400) if span / w <= 30), 86400)
    start = first - first % width
    count = int((last - start) // width) + 1
    created, completed = [0] * count, [0] * count
    for at, name in points:
        index = int((at - start) // width)
        (created if name == "TaskCreated" else completed)[index] += 1
    return [(start + i * width, created[i], completed[i]) for i in range(count)], width


# --- one task ------------------------------------------------------------------------------------------------
@dataclass
class BidRow:
    agent: str
    name: str
    amount_eth: float
    amount_wei: int
    reputation: int | None
    reputation_when: str  # "at bid", "at finalize" or "now"
    weighted: float | None  # amount / (reputation + 1), in ETH: the lowest wins
    winner: bool = False
    block: int | None = None
    tx: str | None = None
    rank: int = 0


@dataclass
class TimelineItem:
    kind: str  # chain, reverted, celery, retry, llm, trainer
    title: str
    at: float | None  # unix seconds of the writer (None: known from the chain only)
    source: str
    details: list[tuple[str, str]] = field(default_factory=list)
    block: int | None = None
    tx: str | None = None
    flag: str = ""  # "", failed, reverted, retry, unseen (on chain, not yet in the trace), missing
    task: str = ""  # the Celery task's short name (celery, retry) or the LLM role (llm)
    caused: list[tuple[str, str]] = field(default_factory=list)  # a chain event's messages: (task, queue)


@dataclass
class Outcome:
    winner: str | None = None
    winner_name: str = ""
    price_eth: float = 0.0
    bid_count: int | None = None
    score: int | None = None
    passed: bool | None = None
    payment_eth: float | None = None
    refund_eth: float | None = None
    reputation_before: int | None = None
    reputation_after: int | None = None


@dataclass
class TaskView:
    id: int
    row: TaskRow | None
    evaluator: str | None
    bidding_deadline: int | None
    execution_deadline: int | None
    text: str
    result: str | None
    bids: list[BidRow]
    outcome: Outcome
    timeline: list[TimelineItem]
    llm: dict[str, float]  # prompt_tokens, completion_tokens, cost_usd (usage keys)
    llm_calls: int
    stuck: list[str]
    names: dict[str, str]
    problems: list[str]


def task(sources: Sources, task_id: int) -> TaskView:
    reads = Reads(sources)
    names = {k: v.name for k, v in _names(reads).items()}
    trace = reads.redis(lambda r: TaskTrace(r).read(task_id), [])
    review = reads.redis(lambda r: r.hget(keys.REVIEW, str(task_id)), None)
    usage = reads.redis(lambda r: r.hgetall(keys.usage_of_task(task_id)), {})
    text = _texts(reads, [task_id]).get(task_id, "")
    chain = reads.chain(lambda s: _task_chain(s, task_id), None)
    row = None
    stuck: list[str] = []
    if chain is not None:
        now = chain["now"]
        row = _row(task_id, chain["task"], text, now, review is not None)
        if row.stuck:
            stuck.append(row.stuck)
    result = None
    if chain is not None and chain["result_hash"] is not None:
        digest = chain["result_hash"]
        stored = reads.redis(lambda r: ResultStore(r).get(digest), None)
        result = sources.scrub(stored)[:TEXT_FULL] if stored is not None else "(the result is not in the store)"
    bids = _bids(reads, task_id, chain, names)
    outcome = _outcome(chain, names)
    timeline = _timeline(sources, trace, chain, names)
    if review is not None:
        reason = review.decode() if isinstance(review, bytes) else str(review)
        stuck.append("waits for a human score: " + sources.scrub(reason)[:300])
    stuck.extend(_given_up(reads, task_id))
    for item in timeline:
        if item.flag in ("failed", "reverted", "missing"):
            stuck.append(f"{item.title}: {item.flag}")
    llm_calls = sum(1 for e in trace if e.kind == "llm")
    decoded = {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in usage.items()}
    return TaskView(
        id=task_id,
        row=row,
        evaluator=str(chain["task"].evaluator) if chain else None,
        bidding_deadline=int(chain["task"].biddingDeadline) if chain else None,
        execution_deadline=int(chain["task"].executionDeadline) if chain else None,
        text=text[:TEXT_FULL],
        result=result,
        bids=bids,
        outcome=outcome,
        timeline=timeline,
        llm=decoded,
        llm_calls=llm_calls,
        stuck=list(dict.fromkeys(stuck)),
        names=names,
        problems=reads.problems,
    )


def _task_chain(session: ChainSession, task_id: int) -> dict[str, Any] | None:
    if task_id < 1 or task_id > int(session.tasks.task_count()):
        return None
    tm, auction, engine = session.tasks.contract, session.auction.contract, session.incentives.contract
    logs: list[Any] = []
    for contract, names in (
        (tm, ("TaskCreated", "TaskAssigned", "ResultSubmitted", "TaskCompleted", "TaskCancelled", "TaskExpired")),
        (auction, ("BidPlaced", "AuctionFinalized")),
        (engine, ("Settled", "Refunded", "Penalized")),
    ):
        for name in names:
            logs.extend(_logs(session, contract, name, taskId=task_id))
    logs.sort(key=lambda log: (int(log["blockNumber"]), int(log["logIndex"])))
    task = session.tasks.get_task(task_id)
    result_hash = next((bytes(log["args"]["resultHash"]) for log in logs if log["event"] == "ResultSubmitted"), None)
    reputations: dict[str, tuple[int, str]] = {}  # agent -> (reputation the contract weighed the bid with, when)
    finalized = next((log for log in logs if log["event"] == "AuctionFinalized"), None)
    registry = session.registry.contract
    for log in logs:
        if log["event"] != "BidPlaced":
            continue
        agent = str(log["args"]["agent"]).lower()
        reputations[agent] = _reputation_at(session, registry, log["args"]["agent"], int(log["blockNumber"]) - 1)
    before = None
    settled = next((log for log in logs if log["event"] in ("Settled", "Penalized")), None)
    if settled is not None and int(task.assignee, 16) != 0:
        changes = _logs(session, registry, "ReputationChanged", agent=task.assignee)
        same_tx = [c for c in changes if c["transactionHash"] == settled["transactionHash"]]
        before = int(same_tx[0]["args"]["oldValue"]) if same_tx else None
    return {
        "task": task,
        "logs": logs,
        "now": int(session.client.w3.eth.get_block("latest")["timestamp"]),
        "result_hash": result_hash,
        "reputations": reputations,
        "finalized_block": int(finalized["blockNumber"]) if finalized is not None else None,
        "reputation_before": before,
    }


def _reputation_at(session: ChainSession, registry: Any, agent: str, block: int) -> tuple[int, str]:
    """The agent's reputation as of ``block`` (the state an open bid or a sealed finalize was weighed in); the
    current one where the node keeps no state that old."""
    try:
        return int(registry.functions.reputationOf(agent).call(block_identifier=max(block, 0))), "at bid"
    except Exception:  # a pruned node: no historical state
        return int(session.registry.reputation_of(agent)), "now"


def _sealed_reputation(session: ChainSession, agent: str, finalized_block: int | None) -> tuple[int, str]:
    """A sealed bid is weighed with the reputation at finalize (the state before the finalizing block)."""
    if not finalized_block:
        return int(session.registry.reputation_of(agent)), "now"
    reputation, when = _reputation_at(session, session.registry.contract, agent, finalized_block - 1)
    return reputation, "at finalize" if when == "at bid" else when


def _bids(reads: Reads, task_id: int, chain: dict[str, Any] | None, names: dict[str, str]) -> list[BidRow]:
    rows: list[BidRow] = []
    mode_sealed = chain is not None and chain["task"].mode == AuctionMode.SEALED
    if chain is not None:
        for log in chain["logs"]:
            if log["event"] != "BidPlaced":
                continue
            agent = str(log["args"]["agent"])
            rep, when = chain["reputations"].get(agent.lower(), (None, "now"))
            rows.append(_bid_row(agent, int(log["args"]["amount"]), rep, when, names))
            rows[-1].block, rows[-1].tx = int(log["blockNumber"]), _hex(log["transactionHash"])
    if mode_sealed or chain is None:
        sealed = reads.redis(lambda r: BidBook(r).bids(task_id), [])
        seen = {row.agent.lower() for row in rows}
        block = chain["finalized_block"] if chain is not None else None
        for bid in sealed:
            if bid.agent.lower() in seen:
                continue
            rep, when = reads.chain(
                lambda s, agent=bid.agent: _sealed_reputation(s, agent, block),  # type: ignore[misc]
                (None, "now"),
            )
            rows.append(_bid_row(bid.agent, bid.amount, rep, when, names))
    if chain is None and not rows:
        open_bids = reads.redis(lambda r: r.hgetall(keys.listener_bids(task_id)), {})
        for bidder, amount in open_bids.items():
            rows.append(_bid_row(_text(bidder), int(amount), None, "now", names))
    winner = str(chain["task"].assignee).lower() if chain is not None else ""
    ordered = sorted(rows, key=lambda b: (b.weighted is None, b.weighted or 0.0, b.block or 0))
    for rank, row in enumerate(ordered, start=1):
        row.rank = rank
        row.winner = row.agent.lower() == winner
    return ordered


def _bid_row(agent: str, amount: int, reputation: int | None, when: str, names: dict[str, str]) -> BidRow:
    return BidRow(
        agent=Web3.to_checksum_address(agent),
        name=names.get(agent.lower(), ""),
        amount_eth=eth(amount),
        amount_wei=amount,
        reputation=reputation,
        reputation_when=when,
        weighted=eth(amount) / (reputation + 1) if reputation is not None else None,
    )


def _outcome(chain: dict[str, Any] | None, names: dict[str, str]) -> Outcome:
    if chain is None:
        return Outcome()
    task = chain["task"]
    out = Outcome()
    if int(task.assignee, 16) != 0:
        out.winner, out.winner_name = str(task.assignee), names.get(str(task.assignee).lower(), "")
        out.price_eth = eth(task.price)
    for log in chain["logs"]:
        args = log["args"]
        if log["event"] == "AuctionFinalized":
            out.bid_count = int(args["bidCount"])
        elif log["event"] == "TaskCompleted":
            out.score, out.passed, out.payment_eth = int(args["score"]), bool(args["passed"]), eth(args["payment"])
        elif log["event"] == "Settled":
            out.refund_eth = eth(args["refund"])
            out.reputation_after = int(args["newReputation"])
        elif log["event"] == "Penalized":
            out.reputation_after = int(args["newReputation"])
    out.reputation_before = chain["reputation_before"]
    return out


def _given_up(reads: Reads, task_id: int) -> list[str]:
    def read(client: redis.Redis) -> list[str]:
        lines = []
        for key in client.scan_iter(f"{keys.WORK}:attempts:execute:{task_id}:*", count=100):
            count, error = client.hmget(key, ["count", "last_error"])
            if int(count or 0) >= reads.sources.settings.execute_attempts:
                why = reads.sources.scrub(_text(error or b""))[:300]
                lines.append(f"execution given up after {int(count or 0)} attempts: {why}")
        return lines

    return reads.redis(read, [])


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _timeline(
    sources: Sources, trace: list[TraceEntry], chain: dict[str, Any] | None, names: dict[str, str]
) -> list[TimelineItem]:
    """The trace in the order Redis received it, each chain entry checked against the chain; events the chain
    has and the trace does not (the listener has not got there yet) go in by block."""
    on_chain = {_event_id(log): log for log in (chain["logs"] if chain else [])}
    queried = {log["event"] for log in (chain["logs"] if chain else [])} | {"TaskCreated"}
    reverted = {str(e.data.get("event_id", "")).lower() for e in trace if e.kind == "reverted"}
    items: list[TimelineItem] = []
    seen: set[str] = set()
    for entry in trace:
        item = _item(sources, entry, names)
        if entry.kind == "chain":
            event_id = str(entry.data.get("event_id", "")).lower()
            seen.add(event_id)
            if event_id in reverted:
                item.flag = "reverted"
            elif chain is not None and event_id not in on_chain and entry.data.get("name") in queried:
                item.flag = "missing"
                item.details.append(("chain", "not on the canonical chain now"))
        items.append(item)
    items = _causal(items)
    for event_id, log in on_chain.items():
        if event_id in seen:
            continue
        item = _chain_item(log, names)
        block = item.block or 0
        index = max((i + 1 for i, it in enumerate(items) if it.kind == "chain" and (it.block or 0) <= block), default=0)
        items.insert(index, item)
    return items


ROLES = {"consider": {"fit", "bid"}, "execute": {"execute"}, "evaluate": {"score"}}  # LLM roles per Celery task


def _causal(items: list[TimelineItem]) -> list[TimelineItem]:
    """Put each chain event before the work it caused: the listener writes an event's entry after sending its
    messages, so a fast worker's first entries can reach the trace before it."""
    ordered = list(items)
    for item in items:
        caused = {name for name, _queue in item.caused}
        if item.kind != "chain" or not caused:
            continue
        roles = set().union(*(ROLES.get(name, set()) for name in caused))
        index = ordered.index(item)
        target = index
        while target > 0:
            before = ordered[target - 1]
            if (before.kind in ("celery", "retry") and before.task in caused) or (
                before.kind == "llm" and before.task in roles
            ):
                target -= 1
            else:
                break
        if target != index:
            ordered.insert(target, ordered.pop(index))
    return ordered


def _item(sources: Sources, entry: TraceEntry, names: dict[str, str]) -> TimelineItem:
    data = entry.data
    source = sources.scrub(entry.source)[:80]
    if entry.kind == "chain":
        details = [(k, _arg(k, v, names)) for k, v in (data.get("args") or {}).items() if k != "taskId"]
        messages = [m for m in data.get("messages") or [] if isinstance(m, dict)]
        caused = [(_short_task(m.get("task")), str(m.get("queue", "?"))) for m in messages]
        if caused:
            details.append(("sent", ", ".join(f"{task} -> {queue}" for task, queue in caused)))
        return TimelineItem(
            "chain",
            str(data.get("name", "?")),
            entry.at,
            source,
            details,
            block=_int(data.get("block")),
            tx=str(data.get("tx") or "") or None,
            caused=caused,
        )
    if entry.kind == "reverted":
        return TimelineItem(
            "reverted", f"reverted: {data.get('name', data.get('event_id', '?'))}", entry.at, source, flag="reverted"
        )
    if entry.kind == "celery":
        state = str(data.get("state") or "")
        details = [("worker", source)]
        if data.get("seconds") is not None:
            details.append(("duration", f"{float(data['seconds']):.3f} s"))
        details.append(("retries", str(data.get("retries", 0))))
        details.append(("state", state))
        if data.get("agent"):
            details.append(("agent", _agent(str(data["agent"]), names)))
        if data.get("agents"):
            details.append(("agents", str(data["agents"])))
        details.extend(_result_details(sources, data.get("result"), names))
        return TimelineItem(
            "celery",
            _short_task(data.get("task")),
            entry.at,
            source,
            details,
            flag="failed" if state == "FAILURE" or _result_status(data.get("result")) == "error" else "",
            task=_short_task(data.get("task")),
        )
    if entry.kind == "retry":
        details = [
            ("worker", source),
            ("retries", str(data.get("retries", 0))),
            ("reason", sources.scrub(data.get("reason", ""))[:300]),
        ]
        task = _short_task(data.get("task"))
        return TimelineItem("retry", f"retry: {task}", entry.at, source, details, flag="retry", task=task)
    if entry.kind == "llm":
        details = [
            ("role", str(data.get("role", "?"))),
            ("agent", _agent(str(data.get("agent", "?")), names)),
            ("tokens", f"{int(data.get('prompt_tokens') or 0)} in / {int(data.get('completion_tokens') or 0)} out"),
            ("cost", f"${float(data.get('cost_usd') or 0):.6f}"),
        ]
        if data.get("offline"):
            details.append(("provider", "offline (no LLM was called)"))
        role = str(data.get("role", "?"))
        return TimelineItem("llm", f"LLM call: {role}", entry.at, source, details, task=role)
    if entry.kind == "trainer":
        details = [
            ("agent", _agent(str(data.get("agent", "?")), names)),
            ("outcome", str(data.get("outcome", "?"))),
            ("reward", f"{float(data.get('reward') or 0):.4f}"),
            ("model version", str(data.get("version", "?"))),
        ]
        if data.get("capabilities_pushed"):
            details.append(("capabilities", "pushed on chain"))
        return TimelineItem("trainer", f"learned: {data.get('outcome', '?')}", entry.at, source, details)
    shown = [(str(k), sources.scrub(json.dumps(v, default=str))[:300]) for k, v in data.items()]
    return TimelineItem(entry.kind, entry.kind, entry.at, source, shown)


def _chain_item(log: Any, names: dict[str, str]) -> TimelineItem:
    args = {k: v for k, v in dict(log["args"]).items() if k not in ("taskId", "description")}
    details = [(k, _arg(k, v, names)) for k, v in args.items()]
    details.append(("listener", "not in the trace yet"))
    return TimelineItem(
        "chain",
        str(log["event"]),
        None,
        "chain",
        details,
        block=int(log["blockNumber"]),
        tx=_hex(log["transactionHash"]),
        flag="unseen",
    )


def _result_status(result: Any) -> str:
    return str(result.get("status", "")) if isinstance(result, dict) else ""


def _result_details(sources: Sources, result: Any, names: dict[str, str]) -> list[tuple[str, str]]:
    if not isinstance(result, dict):
        return []
    out = []
    for key in ("status", "amount", "mode", "score", "reward", "reason", "error"):
        if key in result and result[key] is not None:
            value = result[key]
            shown = f"{eth(int(value)):.4f} ETH" if key in ("amount", "reward") and _isint(value) else str(value)
            out.append((f"result {key}" if key != "status" else "result", sources.scrub(shown)[:300]))
    decisions = result.get("decisions")
    if isinstance(decisions, dict):
        for agent, decision in decisions.items():
            parts = [str(decision.get("status", "?"))] if isinstance(decision, dict) else [str(decision)]
            if isinstance(decision, dict) and _isint(decision.get("amount")):
                parts.append(f"{eth(int(decision['amount'])):.4f} ETH")
            if isinstance(decision, dict) and decision.get("reason"):
                parts.append(str(decision["reason"]))
            out.append((_agent(str(agent), names), sources.scrub(" - ".join(parts))[:300]))
    return out


def _isint(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and value.isdigit())


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _short_task(name: Any) -> str:
    return str(name or "?").rsplit(".", 1)[-1]


def _agent(address: str, names: dict[str, str]) -> str:
    name = names.get(address.lower())
    return f"{name} ({address[:10]}…)" if name else address


def _arg(key: str, value: Any, names: dict[str, str]) -> str:
    if key in ETH_ARGS and _isint(value):
        return f"{eth(int(value)):.4f} ETH"
    if key.endswith("Deadline") and _isint(value):
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(int(value))) + " (chain clock)"
    if key == "executionDuration" and _isint(value):
        return f"{int(value)} s"
    if key == "mode" and value in (0, 1):
        return AuctionMode(value).label
    if key == "tags" and isinstance(value, list):
        return ", ".join(tag_text(str(t)) if isinstance(t, str) else tag_text(bytes(t)) for t in value)
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, str) and Web3.is_address(value):
        return _agent(value, names)
    return str(value)


# --- agents ----------------------------------------------------------------------------------------------------
@dataclass
class AgentRow:
    address: str
    name: str
    profile: str
    queue: str
    active: bool | None
    reputation: int | None
    capabilities: dict[str, int]
    earnings_eth: float
    wins: int
    completed: int
    bids_placed: int  # BidPlaced logs (open auctions; sealed bids never reach the chain)
    win_rate: float | None  # over its last settled bids (the trainer's record)
    llm_cost_usd: float
    llm_tokens: int
    model_version: int | None
    model_updated: float | None  # mtime of the policy/state file


@dataclass
class AgentsView:
    agents: list[AgentRow]
    problems: list[str]


@dataclass
class AgentView:
    row: AgentRow | None
    earnings: list[tuple[int, float]]  # (block, cumulative ETH)
    reputation: list[tuple[int, int]]  # (block, reputation after the change)
    scores: list[tuple[int, float]]  # (n-th learned task, score) from the trainer's history
    tasks: list[dict[str, Any]]  # task id, price, score, payment, block
    problems: list[str]


def agents(sources: Sources) -> AgentsView:
    reads = Reads(sources)
    directory = _names(reads)
    activity = reads.chain(lambda s: _activity(s), None)
    rows = [_agent_row(reads, entry, activity) for entry in sorted(directory.values(), key=lambda a: a.name)]
    return AgentsView(rows, reads.problems)


def agent(sources: Sources, address: str) -> AgentView:
    reads = Reads(sources)
    if not Web3.is_address(address):
        return AgentView(None, [], [], [], [], [f"not an address: {address[:60]}"])
    directory = _names(reads)
    entry = directory.get(address.lower()) or FleetAgent(address=Web3.to_checksum_address(address), name="", profile="")
    activity = reads.chain(lambda s: _activity(s, entry.address), None)
    row = _agent_row(reads, entry, activity)
    earnings: list[tuple[int, float]] = []
    tasks: list[dict[str, Any]] = []
    reputation: list[tuple[int, int]] = []
    if activity is not None:
        first, head = activity["first_block"], activity["head"]
        total = 0.0
        earnings.append((first, 0.0))
        for log in activity["settled"]:
            total += eth(log["args"]["payment"])
            earnings.append((int(log["blockNumber"]), total))
        earnings.append((head, total))
        payments = {int(log["args"]["taskId"]): log for log in activity["settled"]}
        for log in activity["assigned"]:
            task_id = int(log["args"]["taskId"])
            settled = payments.get(task_id)
            tasks.append(
                {
                    "id": task_id,
                    "price": eth(log["args"]["price"]),
                    "block": int(log["blockNumber"]),
                    "score": int(settled["args"]["score"]) if settled else None,
                    "payment": eth(settled["args"]["payment"]) if settled else None,
                }
            )
        changes = activity["reputation"]
        if changes:
            reputation = [(first, int(changes[0]["args"]["oldValue"]))]
            reputation += [(int(c["blockNumber"]), int(c["args"]["newValue"])) for c in changes]
            reputation.append((head, reputation[-1][1]))
        elif row.reputation is not None:
            reputation = [(first, row.reputation), (head, row.reputation)]
    history = _state(sources.settings.models_dir, entry.address).get("history") or []
    scores = [(i + 1, float(h.get("score", 0))) for i, h in enumerate(history) if isinstance(h, dict)]
    return AgentView(row, earnings, reputation, scores, tasks[::-1], reads.problems)


def _activity(session: ChainSession, agent: str | None = None) -> dict[str, Any]:
    flt = {"agent": Web3.to_checksum_address(agent)} if agent else {}
    data: dict[str, Any] = {
        "settled": _logs(session, session.incentives.contract, "Settled", **flt),
        "assigned": _logs(session, session.tasks.contract, "TaskAssigned", **flt),
        "bids": _logs(session, session.auction.contract, "BidPlaced", **flt),
        "reputation": _logs(session, session.registry.contract, "ReputationChanged", **flt) if agent else [],
        "head": int(session.client.w3.eth.block_number),
        "first_block": session.client.deployment.deployment_block if session.client.deployment else 0,
    }
    return data


def _agent_row(reads: Reads, entry: FleetAgent, activity: dict[str, Any] | None) -> AgentRow:
    address = entry.address
    lower = address.lower()
    chain_agent = reads.chain(lambda s: s.registry.get_agent(address), None) if activity is not None else None
    capabilities = dict(zip(entry.capabilities, entry.weights, strict=False))
    reputation, active = entry.reputation, entry.active
    if chain_agent is not None:
        capabilities = {str(c): int(w) for c, w in zip(chain_agent.capabilities, chain_agent.weights, strict=False)}
        reputation = reads.chain(lambda s: int(s.registry.reputation_of(address)), reputation)
        active = reads.chain(lambda s: bool(s.registry.is_active(address)), active)
    settled = [log for log in (activity or {}).get("settled", []) if str(log["args"]["agent"]).lower() == lower]
    assigned = [log for log in (activity or {}).get("assigned", []) if str(log["args"]["agent"]).lower() == lower]
    bids = [log for log in (activity or {}).get("bids", []) if str(log["args"]["agent"]).lower() == lower]
    recent = reads.redis(lambda r: [int(v) for v in r.lrange(keys.recent_bids(address), 0, -1)], [])
    usage = reads.redis(lambda r: r.hgetall(keys.usage_of_agent(address)), {})
    spent = {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in usage.items()}
    version, updated = _model_version(reads.sources.settings.models_dir, address)
    return AgentRow(
        address=address,
        name=entry.name,
        profile=entry.profile,
        queue=entry.queue if entry.profile else "",
        active=active,
        reputation=reputation,
        capabilities=capabilities,
        earnings_eth=sum(eth(log["args"]["payment"]) for log in settled),
        wins=len(assigned),
        completed=sum(1 for log in settled if int(log["args"]["score"]) >= 50),
        bids_placed=len(bids),
        win_rate=sum(recent) / len(recent) if recent else None,
        llm_cost_usd=spent.get("cost_usd", 0.0),
        llm_tokens=int(spent.get("prompt_tokens", 0) + spent.get("completion_tokens", 0)),
        model_version=version,
        model_updated=updated,
    )


def _model_files(models_dir: Path, address: str, suffix: str) -> list[Path]:
    return [Path(models_dir) / f"{name}{suffix}" for name in dict.fromkeys((address, address.lower()))]


def _state(models_dir: Path, address: str) -> dict[str, Any]:
    for path in _model_files(models_dir, address, "_state.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        return data if isinstance(data, dict) else {}
    return {}


def _model_version(models_dir: Path, address: str) -> tuple[int | None, float | None]:
    """The version of the agent's exported policy (what workers bid with), else its state file's."""
    import numpy as np

    for path in _model_files(models_dir, address, "_policy.npz"):
        try:
            with np.load(path, allow_pickle=False) as data:
                return int(data["arr_0"][1]), path.stat().st_mtime
        except (OSError, ValueError, KeyError, IndexError):
            continue
    state = _state(models_dir, address)
    if "model_version" in state:
        mtimes = [p.stat().st_mtime for p in _model_files(models_dir, address, "_state.json") if p.exists()]
        return int(state["model_version"]), (mtimes[0] if mtimes else None)
    return None, None


# --- fleet -----------------------------------------------------------------------------------------------------
@dataclass
class FailureRow:
    at: float | None
    task: str
    celery_id: str
    error: str


@dataclass
class FleetView:
    workers: dict[str, str]  # worker name -> its answer to ping
    queues: dict[str, int | None]  # queue -> messages waiting (None: not readable on this broker)
    broker: str  # "redis" or the broker's scheme
    failures: list[FailureRow]
    failures_total: int
    checkpoint: int | None
    head: int | None
    lag: int | None
    events_total: int | None
    last_event_at: float | None
    trainers: dict[str, float]  # trainer name -> seconds since its last heartbeat
    review: int | None
    problems: list[str]


def fleet(sources: Sources) -> FleetView:
    reads = Reads(sources)
    settings = sources.settings
    answers = reads.other("Celery broker", sources.pings, {})
    workers = {
        name: str(reply.get("ok", reply)) if isinstance(reply, dict) else str(reply) for name, reply in answers.items()
    }
    broker_url = settings.broker_url.get_secret_value() if settings.broker_url else ""
    broker = broker_url.split(":", 1)[0] if broker_url else "redis"
    queue_names = [*routing.ALL_QUEUES, *routing.training_queues(settings.trainer_shards)]
    queue_names = list(dict.fromkeys(queue_names))
    queues: dict[str, int | None] = dict.fromkeys(queue_names)
    if broker.startswith("redis"):
        if broker_url:
            client = redis.Redis.from_url(broker_url, socket_timeout=3, socket_connect_timeout=2)
            depths = reads.other("Celery broker", lambda: _depths(client, queue_names), {})
        else:
            depths = reads.redis(lambda r: _depths(r, queue_names), {})
        queues.update(depths)
    raw = reads.redis(lambda r: _stream(r.xrevrange(keys.FAILURES, count=50)), [])
    failures = [_failure(sources, fields) for _id, fields in raw]
    failures_total = reads.redis(lambda r: int(r.xlen(keys.FAILURES)), 0)
    head = reads.chain(lambda s: int(s.client.w3.eth.block_number), None)
    chain_id = reads.chain(lambda s: int(s.client.w3.eth.chain_id), None)
    checkpoint = None
    if chain_id is not None:
        stored = reads.redis(lambda r: r.get(keys.listener_checkpoint(chain_id)), None)
        if stored:
            checkpoint = _int(json.loads(stored).get("number"))
    events_total = reads.redis(lambda r: int(r.xlen(keys.EVENTS)), None)
    last = reads.redis(lambda r: _stream(r.xrevrange(keys.EVENTS, count=1)), [])
    last_at = int(last[0][0].split("-")[0]) / 1000 if last else None
    now = reads.redis(lambda r: _clock(r.time()), None)
    live = reads.redis(lambda r: _scores(r.zrange(keys.TRAINER_LIVE, 0, -1, withscores=True)), [])
    trainers = {}
    if now is not None:  # heartbeats are Redis time in ms
        trainers = {name: max(0.0, now - score / 1000) for name, score in live}
    review = reads.redis(lambda r: int(r.hlen(keys.REVIEW)), None)
    return FleetView(
        workers=dict(sorted(workers.items())),
        queues=queues,
        broker=broker,
        failures=failures,
        failures_total=failures_total,
        checkpoint=checkpoint,
        head=head,
        lag=(head - checkpoint) if head is not None and checkpoint is not None else None,
        events_total=events_total,
        last_event_at=last_at,
        trainers=trainers,
        review=review,
        problems=reads.problems,
    )


def _depths(client: redis.Redis, names: list[str]) -> dict[str, int | None]:
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.llen(name)
    return {name: int(n) for name, n in zip(names, pipe.execute(), strict=True)}


def _failure(sources: Sources, text: dict[str, str]) -> FailureRow:
    return FailureRow(
        at=float(text["at"]) if _isfloat(text.get("at")) else None,
        task=sources.scrub(text.get("task", "?"))[:120],
        celery_id=sources.scrub(text.get("id", ""))[:80],
        error=sources.scrub(text.get("error", ""))[:500],
    )


def _isfloat(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def health(sources: Sources) -> dict[str, bool]:
    """Whether Redis and the chain answer (the dashboard's own health: 503 when either does not)."""
    reads = Reads(sources)
    reads.redis(lambda r: r.ping(), False)
    reads.chain(lambda s: s.client.w3.eth.block_number, 0)
    return {"redis": reads.redis_ok, "chain": reads.chain_ok}


def grouped(rows: list[TaskRow]) -> dict[str, list[TaskRow]]:
    out: dict[str, list[TaskRow]] = defaultdict(list)
    for row in rows:
        out[row.status].append(row)
    return dict(out)
