"""From events to work: routing rules, idempotent sends, and the event stream.

Every event becomes (a) an entry in a capped Redis Stream (the event log dashboards and replays read)
and (b) zero or more Celery messages, each with an idempotency key ``{tx}:{log index}:{target}`` that is
also its Celery task id. An event's keys are set to ``sent`` (one pipeline, with its stream entry) after its sends.
A replay after a crash skips ``sent`` keys and re-sends the rest: the messages of the (at most one) event in
flight, whose sends may or may not have happened; workers deduplicate by task id and ledger key, so the same
key never yields two pieces of work that both run. The batch's keys are read in one MGET.
A new task is one consider message per profile queue (up to ``consider_batch`` agents each), not one per agent.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from celery import Celery
from redis.client import Pipeline
from web3.types import LogReceipt

from agentfleet.bidding.market import RedisMarket
from agentfleet.bidding.sealed import BidBook
from agentfleet.chain.market import tag_text
from agentfleet.content import TaskTexts
from agentfleet.directory import AgentDirectory, FleetAgent
from agentfleet.protocol import keys, limits, routing
from agentfleet.protocol.inbox import Letter, TrainingInbox, clearing_done_id, outcome_done_id
from agentfleet.protocol.keys import text
from agentfleet.trace import TaskTrace
from chain_listener.events import ChainEvent, EventDecoder, UndecodableLog
from chain_listener.metrics import ListenerMetrics

log = logging.getLogger(__name__)

KEY_TTL = 30 * 24 * 3600  # seconds: longer than any replay window


@dataclass(frozen=True)
class Work:
    task: str
    queue: str
    key: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    learned_as: str | None = None  # a training message: the trainer's done id (posted to its inbox)


class Dispatcher:
    def __init__(
        self,
        client: redis.Redis,
        app: Celery,
        decoder: EventDecoder,
        *,
        directory: AgentDirectory | None = None,
        metrics: ListenerMetrics | None = None,
        stream_key: str = keys.EVENTS,
        stream_maxlen: int = 100_000,
        on_event: Callable[[ChainEvent], None] | None = None,
        trainer_shards: int = 1,
        consider_batch: int = 32,
    ) -> None:
        self.redis = client
        self.app = app
        self.decoder = decoder
        self.directory = directory or AgentDirectory(client)
        self.metrics = metrics or ListenerMetrics()
        self.stream_key = stream_key
        self.stream_maxlen = stream_maxlen
        self.on_event = on_event
        self.trainer_shards = trainer_shards  # outcomes go to the agent's training shard queue
        self.consider_batch = consider_batch  # eligible agents of one profile per consider message
        self._agents: list[FleetAgent] | None = None
        self._writes: Pipeline | None = None  # writes routing queues for the batch (None: write at once)
        self.texts = TaskTexts(client)
        self.trace = TaskTrace(client, source="listener")
        self.inbox = TrainingInbox(client)

    # --- entry points used by ChainFollower -------------------------------------------------------------
    def handle(self, logs: list[LogReceipt]) -> dict[int, list[str]]:
        """Decode, route and send; returns event ids per block for the checkpoint store."""
        by_block: dict[int, list[str]] = {}
        events: list[ChainEvent] = []
        for entry in logs:
            try:
                event = self.decoder.decode(entry)
            except UndecodableLog as exc:
                log.warning("skipping log: %s", exc)
                self.metrics.skipped.labels(reason=exc.reason).inc()
                continue
            events.append(event)
            by_block.setdefault(event.block_number, []).append(event.id)
        self._agents = None  # directory snapshot for this batch (agent events refresh it)
        self._writes = self.redis.pipeline(transaction=False)  # the batch's task texts: one round trip
        routed = [(event, self.route(event)) for event in events]  # chain order: sorted by (block, log index)
        states = self._states(routed)  # sends the texts too: they are in Redis before any message is
        self._append_events(routed, states)
        with self.app.producer_or_acquire() as producer:
            for (event, works), (state_keys, known) in zip(routed, states, strict=True):
                self._send(event, works, state_keys, known, producer)
                self.metrics.events.labels(event=event.name).inc()
                if self.on_event:
                    self.on_event(event)
        return by_block

    def revert(self, event_ids: list[str]) -> None:
        """Mark events of orphaned blocks reverted (handlers check this) and log them in the stream."""
        pipe = self.redis.pipeline()
        for event_id in event_ids:
            pipe.set(keys.reverted(event_id), 1, ex=KEY_TTL)
            pipe.xadd(
                self.stream_key,
                {"id": event_id, "status": "reverted"},
                maxlen=self.stream_maxlen,
                approximate=True,
            )
        pipe.execute()
        self.metrics.reverted.inc(len(event_ids))

    # --- routing rules ------------------------------------------------------------------------------------
    def route(self, event: ChainEvent) -> list[Work]:
        """The work an event creates (and the directory/bid bookkeeping it implies)."""
        args, message, name = event.args, event.to_message(), event.name
        if name == "TaskCreated":
            tags = [tag_text(str(t)) for t in args.get("tags", [])]
            self._keep_text(args)
            return self._considers(event, self._eligible(tags))
        if name == "BidPlaced":
            self.redis.hset(keys.listener_bids(args["taskId"]), str(args["agent"]).lower(), str(args["amount"]))
            return []
        if name == "TaskAssigned":
            return self._assigned(event)
        if name == "AuctionFinalized" and int(str(args.get("winner", "0x0")), 16) != 0:
            return [
                Work(
                    routing.RECORD_CLEARING,
                    routing.training_queue(str(args["winner"]), self.trainer_shards),
                    self._key(event, "clearing"),
                    {"task_id": args["taskId"], "event": message},
                    learned_as=clearing_done_id(event.id),
                )
            ]
        if name == "ResultSubmitted":
            return [
                Work(
                    routing.EVALUATE,
                    routing.EVALUATION,
                    self._key(event, "evaluate"),
                    {"task_id": args["taskId"], "event": message},
                )
            ]
        if name == "TaskCompleted":
            outcome = "won" if args.get("passed") else "failed"
            return [self._outcome(event, str(args["agent"]), outcome)]
        if name == "TaskExpired" and int(str(args.get("agent", "0x0")), 16) != 0:
            return [self._outcome(event, str(args["agent"]), "failed")]
        if name.startswith("Agent"):
            self._agents = None
        if name in {"AgentRegistered", "AgentUpdated"}:
            self.directory.update(
                str(args["agent"]),
                capabilities=[str(c) for c in args.get("capabilities", [])],
                weights=[int(w) for w in args.get("weights", [])],
                reputation=limits.INITIAL_REPUTATION if name == "AgentRegistered" else None,
            )
            if name == "AgentRegistered":
                RedisMarket(self.redis).remember_reputation(
                    str(args["agent"]), limits.INITIAL_REPUTATION, pipe=self._writes
                )
            return []
        if name == "ReputationChanged":
            self.directory.update(str(args["agent"]), reputation=int(args["newValue"]))
            RedisMarket(self.redis).remember_reputation(str(args["agent"]), int(args["newValue"]), pipe=self._writes)
            return []
        if name == "CapabilityWeightChanged":
            capability = tag_text(str(args["capability"]))
            self.directory.set_weight(str(args["agent"]), capability, int(args["newValue"]))
            return []
        if name in {"AgentDeactivated", "AgentReactivated"}:
            self.directory.update(str(args["agent"]), active=name == "AgentReactivated")
            return []
        if name == "MessageSent":
            recipient = self.directory.get(str(args["to"]))
            if recipient is None:
                return []
            return [
                Work(
                    routing.DELIVER,
                    recipient.queue,
                    self._key(event, "deliver"),
                    {"agent": recipient.address, "event": message},
                )
            ]
        return []

    def _keep_text(self, args: dict[str, Any]) -> None:
        """The task's content hash, and its text when the event carries it (the contract checked the hash)."""
        try:
            digest = bytes.fromhex(str(args["contentHash"]).removeprefix("0x"))
            description = str(args.get("description") or "")
            if description:
                self.texts.put(description, task_id=int(args["taskId"]), digest=digest, pipe=self._writes)
            else:
                self.texts.remember(int(args["taskId"]), digest, pipe=self._writes)
        except (KeyError, ValueError) as exc:  # a malformed event: the workers fall back to the chain's logs
            log.warning("task text of event %s not kept: %s", args.get("taskId"), exc)

    def _considers(self, event: ChainEvent, eligible: list[FleetAgent]) -> list[Work]:
        """One consider message per profile queue and up to ``consider_batch`` agents: the publish cost of a
        new task grows with the profiles, not the agents. The key names the batch's agents, so a directory
        that changed before a replay yields a new message (agents already decided skip it by their ledger)."""
        by_queue: dict[str, list[str]] = {}
        for agent in eligible:
            by_queue.setdefault(agent.queue, []).append(agent.address)
        works = []
        for queue, members in sorted(by_queue.items()):
            for first in range(0, len(members), self.consider_batch):
                chunk = members[first : first + self.consider_batch]
                digest = hashlib.sha256(",".join(a.lower() for a in chunk).encode()).hexdigest()[:16]
                kwargs = {"agents": chunk, "task_id": event.args["taskId"], "event": event.to_message()}
                works.append(Work(routing.CONSIDER, queue, self._key(event, f"consider:{queue}:{digest}"), kwargs))
        return works

    def _eligible(self, tags: list[str]) -> list[FleetAgent]:
        if self._agents is None:
            self._agents = self.directory.all()
        return sorted((a for a in self._agents if a.serves(tags)), key=lambda a: a.address)

    def _assigned(self, event: ChainEvent) -> list[Work]:
        args, task_id = event.args, event.args["taskId"]
        winner = str(args["agent"]).lower()
        works: list[Work] = []
        fleet_winner = self.directory.get(winner)
        if fleet_winner is not None:
            works.append(
                Work(
                    routing.EXECUTE,
                    fleet_winner.queue,
                    self._key(event, f"execute:{winner}"),
                    {"agent": fleet_winner.address, "task_id": task_id, "event": event.to_message()},
                )
            )
        bidders = {text(k) for k in self.redis.hkeys(keys.listener_bids(task_id))}  # open mode: BidPlaced
        bidders |= BidBook(self.redis).agents(task_id)  # sealed mode: the bid book
        for loser in sorted(bidders - {winner}):
            if self.directory.get(loser) is not None:
                works.append(self._outcome(event, loser, "lost"))
        return works

    def _outcome(self, event: ChainEvent, agent: str, outcome: str) -> Work:
        return Work(
            routing.RECORD_OUTCOME,
            routing.training_queue(agent, self.trainer_shards),
            self._key(event, f"outcome:{agent.lower()}"),
            {"agent": agent, "task_id": event.args["taskId"], "outcome": outcome, "event": event.to_message()},
            learned_as=outcome_done_id(event.args["taskId"], agent),
        )

    @staticmethod
    def _key(event: ChainEvent, target: str) -> str:
        return f"{event.id}:{target}"

    # --- two-phase idempotent send ------------------------------------------------------------------------
    def _trace_event(self, event: ChainEvent, works: list[Work], pipe: Pipeline) -> None:
        """The event in its task's trace (same round trip as the stream entry, before its messages are sent, so
        it comes first in the timeline): what happened on chain and which messages it caused."""
        task_id = event.args.get("taskId")
        if not isinstance(task_id, int) or task_id <= 0:
            return
        self.trace.add(
            task_id,
            "chain",
            pipe=pipe,
            name=event.name,
            contract=event.contract,
            event_id=event.id,
            block=event.block_number,
            tx=event.tx_hash,
            args={k: v for k, v in event.args.items() if k != "description"},  # the text is in the content store
            messages=[{"task": w.task, "queue": w.queue} for w in works],
        )

    def _states(self, routed: list[tuple[ChainEvent, list[Work]]]) -> list[tuple[list[str], list[bytes | None]]]:
        """Every state key of the batch (each message's, each event's stream entry, each event's reverted
        marker) read in one MGET: per event, its keys and their values."""
        per_event = []
        for event, works in routed:
            stream_key = f"{keys.DISPATCH}:{self._key(event, 'stream')}"
            per_event.append([*(f"{keys.DISPATCH}:{w.key}" for w in works), stream_key, keys.reverted(event.id)])
        flat = [key for event_keys in per_event for key in event_keys]
        writes, self._writes = self._writes, None
        if writes is None:
            writes = self.redis.pipeline(transaction=False)
        if flat:
            writes.mget(flat)
        done = writes.execute()
        values: list[Any] = list(done[-1]) if flat else []
        out, at = [], 0
        for event_keys in per_event:
            out.append((event_keys, values[at : at + len(event_keys)]))
            at += len(event_keys)
        live_again = [event_keys[-1] for event_keys, known in out if known[-1] is not None]
        if live_again:  # re-included after a reorg: live again, before any worker sees its messages
            self.redis.delete(*live_again)
        return out

    def _send(
        self, event: ChainEvent, works: list[Work], state_keys: list[str], known: list[bytes | None], producer: Any
    ) -> None:
        """Send the event's messages not yet ``sent``, then mark them in one round trip. A crash before the marks
        re-sends this event's messages on replay, under the same task ids (workers drop the copy)."""
        *message_states, _stream_state, _reverted = known
        todo = [(w, k) for w, k, state in zip(works, state_keys, message_states, strict=False) if state != b"sent"]
        for work, _key in todo:
            self.app.send_task(
                work.task,
                kwargs=work.kwargs,
                queue=work.queue,
                task_id=work.key,
                producer=producer,
                ignore_result=True,
                argsrepr="()",
                kwargsrepr=_brief(work.kwargs),  # Celery's saferepr of the event took a third of the send
            )
            self.metrics.dispatched.labels(task=work.task).inc()
        if not todo:
            return
        pipe = self.redis.pipeline(transaction=False)  # one write, applied in order; no MULTI needed
        for work, key in todo:
            if work.learned_as is not None:  # kept until the trainer settles it (``agentfleet.protocol.inbox``)
                self.inbox.post(Letter(work.learned_as, work.task, work.queue, work.kwargs), pipe=pipe)
            pipe.set(key, "sent", ex=KEY_TTL)
        pipe.execute()

    def _append_events(
        self, routed: list[tuple[ChainEvent, list[Work]]], states: list[tuple[list[str], list[bytes | None]]]
    ) -> None:
        """The batch's events not yet in the stream, with their trace entries, in one round trip before the
        sends: the stream entry and then its mark, so a cut connection can repeat an entry on replay but never
        lose one; a crash after this and before the sends re-sends the messages, not the entries."""
        pipe = self.redis.pipeline(transaction=False)
        for (event, works), (state_keys, known) in zip(routed, states, strict=True):
            if known[-2] == b"sent":
                continue
            self._trace_event(event, works, pipe)
            pipe.xadd(
                self.stream_key,
                {"id": event.id, "status": "confirmed", "name": event.name, "event": json.dumps(event.to_message())},
                maxlen=self.stream_maxlen,
                approximate=True,
            )
            pipe.set(state_keys[-2], "sent", ex=KEY_TTL)
        if len(pipe):
            pipe.execute()


def _brief(kwargs: dict[str, Any]) -> str:
    """What Flower and the logs show of a message: the ids, not the whole event."""
    shown = {k: v for k, v in kwargs.items() if k in ("agent", "task_id", "outcome")}
    if "agents" in kwargs:
        shown["agents"] = len(kwargs["agents"])
    event = kwargs.get("event")
    if isinstance(event, dict):
        shown["event"] = f"{event.get('name')} {event.get('id')}"
    return repr(shown)
