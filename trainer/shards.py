"""Trainer shards: several trainers split the agents, and one trainer at a time learns a shard's agents.

Why: a trainer is one process on one core (solo pool, torch on one thread) and it keeps each agent's model in
memory between checkpoints (``trainer.learners``), so two trainers must never learn the same agent. With
``AGENTFLEET_TRAINER_SHARDS=N`` (N > 1) the listener sends an agent's outcomes to ``training.<crc32 % N>``
(``routing.training_queue``); every trainer runs the same command (``-Q training``, so ``docker compose up
--scale trainer=N`` needs nothing per replica) and, in the worker, :class:`ShardClaims` takes shards with
leases in Redis and the worker consumes the queues of the shards it holds.

- A lease is ``SET NX PX`` of the shard's key to a token unique to that claim, renewed by a heartbeat
  thread every third of the lease with compare-and-renew (Lua: a lease that expired and went to another
  trainer is never renewed by its old holder). A SIGKILLed or paused trainer stops renewing: its shards are
  free one lease later.
- Live trainers: a sorted set, member the trainer, score the Redis clock at its last heartbeat (one clock for
  every host; entries older than a lease are dropped). Each trainer holds a fair share,
  ``ceil(shards / live trainers)``: it claims free shards up to it and, when another trainer joined, hands the
  extras over: stop consuming the queue, checkpoint the shard's agents, then compare-and-delete the lease, in
  this order and in the worker's own loop (between two tasks). The newcomer claims them at its next beat.
- Fencing: a renewal refused means the lease is lost: the queue is cancelled and the shard's agents are
  forgotten without writing. A trainer paused past its lease may run a task before its heartbeat notices, so
  :class:`trainer.learners.Learners` asks the fence first: locally a lease counts for 3/4 of its term after
  the last renewal was sent (:meth:`ShardClaims.token`), and a checkpoint asks Redis (:meth:`ShardClaims.confirm`).
- ``trainer.tasks.record_outcome`` forwards an outcome of a shard this trainer does not hold to the shard's
  queue (hand-sent to ``training``, or in flight during a handover).

The heartbeat thread never touches the Celery consumer: queue changes and checkpoints are queued in order and
run through ``consumer.call_soon`` (the worker's event loop, thread-safe; it runs no callback in order on its
own, hence the one FIFO drained by each call).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from agentfleet.protocol import keys, routing
from trainer.learners import Learners, NotOwner

log = logging.getLogger(__name__)

LIVE = keys.TRAINER_LIVE
TRUSTED_FRACTION = 0.75  # of a lease after its last renewal was sent: how long this process trusts it alone


def shard_queue(shard: int, shards: int) -> str:
    """The queue of one shard's outcomes (``routing.training_queue`` of its agents)."""
    return routing.shard_queue(shard) if shards > 1 else routing.TRAINING


def lease_key(shard: int) -> str:
    """The shard's lease: the token of the trainer claim that holds it, with a PX expiry."""
    return keys.trainer_shard(shard)


# Renew or delete only our own lease (compare-and-renew / compare-and-delete): never one that expired and
# went to another trainer meanwhile.
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
# Register a heartbeat at the Redis clock, drop trainers silent for a lease, count the live ones.
_ALIVE = """
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('zadd', KEYS[1], now, ARGV[1])
redis.call('zremrangebyscore', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('pexpire', KEYS[1], ARGV[2])
return redis.call('zcard', KEYS[1])
"""


class ShardOwner(Protocol):
    """What the claims drive in the worker, in order, through ``call_soon`` (the worker's loop)."""

    def acquired(self, shard: int) -> None:
        """The lease is this trainer's: start consuming the shard's queue."""

    def releasing(self, shard: int) -> None:
        """The lease still holds and is deleted right after: stop consuming, checkpoint the shard's agents."""

    def lost(self, shard: int) -> None:
        """The lease expired or another trainer holds it: stop consuming, forget the agents unwritten."""


@dataclass
class _Lease:
    token: str
    renewed: float  # clock() when the last successful claim or renewal was sent (a lower bound)
    releasing: bool = False


class ShardClaims:
    """This trainer's leases on shards, its heartbeat, its fair share; the fence of its learners."""

    def __init__(
        self,
        *,
        client: redis.Redis,
        shards: int,
        lease_seconds: float,
        name: str | None = None,
        owner: ShardOwner | None = None,
        call_soon: Callable[[Callable[[], None]], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``call_soon`` runs a callable in the worker's loop (``consumer.call_soon``); None runs it at once
        (tests, or a process without a Celery consumer). ``name`` identifies the trainer in Redis (default:
        host, pid and a random part, unique per start)."""
        if shards < 2:
            raise ValueError(f"shard claims need 2 shards or more, got {shards} (one trainer needs no lease)")
        if lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be > 0, got {lease_seconds}")
        self.client = client
        self.shards = shards
        self.lease_seconds = float(lease_seconds)
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.owner = owner
        self._call_soon = call_soon
        self._clock = clock
        self._lock = threading.Lock()
        self._held: dict[int, _Lease] = {}
        self._pending: deque[Callable[[], None]] = deque()  # owner calls, run in order in the worker's loop
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the fence (trainer.learners.Fence) ---------------------------------------------------------------
    def shard(self, agent: str) -> int:
        return routing.shard_of(agent, self.shards)

    @property
    def owned(self) -> frozenset[int]:
        """The shards this trainer holds a lease on (including one being handed over)."""
        with self._lock:
            return frozenset(self._held)

    def token(self, agent: str) -> str | None:
        """The token of the lease on the agent's shard while this process may trust it without asking Redis
        (3/4 of a lease after the last renewal was sent), else None."""
        with self._lock:
            lease = self._held.get(self.shard(agent))
            if lease is None or self._clock() - lease.renewed > self.lease_seconds * TRUSTED_FRACTION:
                return None
            return lease.token

    def confirm(self, agent: str) -> str | None:
        """``token`` checked against Redis: the key still holds it, with a quarter of a lease left at least."""
        token = self.token(agent)
        if token is None:
            return None
        pipe = self.client.pipeline()
        pipe.get(lease_key(self.shard(agent)))
        pipe.pttl(lease_key(self.shard(agent)))
        value, left = pipe.execute()
        if value is None or (value.decode() if isinstance(value, bytes) else value) != token:
            return None
        return token if left >= self.lease_seconds * 1000 * (1 - TRUSTED_FRACTION) else None

    # --- the heartbeat -------------------------------------------------------------------------------------
    def start(self) -> None:
        """Beat now and then every third of a lease, in a daemon thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="trainer shard claims", daemon=True)
        self._thread.start()

    def beat(self) -> None:
        """One heartbeat: say this trainer is live, renew its leases, then claim or hand over to its share."""
        live = int(self.client.eval(_ALIVE, 1, LIVE, self.name, self._lease_ms()))
        self._renew()
        self._rebalance(math.ceil(self.shards / max(1, live)))

    def close(self) -> None:
        """Worker shutdown (in the worker's thread): stop beating, hand every shard over (stop consuming,
        checkpoint, delete the lease), leave the live set: the other trainers take the shards at their next beat,
        not a lease later."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._drain()  # what the heartbeat queued and the worker's loop did not run any more
        with self._lock:
            held = [(shard, lease.token) for shard, lease in self._held.items()]
        for shard, token in held:
            self._hand_over(shard, token)
        with suppress(redis.RedisError):
            self.client.zrem(LIVE, self.name)

    # --- internals -------------------------------------------------------------------------------------------
    def _lease_ms(self) -> int:
        return max(1, int(self.lease_seconds * 1000))

    def _run(self) -> None:
        while True:
            try:
                self.beat()
            except redis.RedisError as exc:  # the leases lapse unless Redis comes back within them
                log.warning("trainer shard heartbeat failed: %s", exc)
            except Exception:
                log.exception("trainer shard heartbeat failed")
            if self._stop.wait(self.lease_seconds / 3):
                return

    def _renew(self) -> None:
        with self._lock:
            held = [(shard, lease.token) for shard, lease in self._held.items()]
        for shard, token in held:
            sent = self._clock()
            renewed = self.client.eval(_RENEW, 1, lease_key(shard), token, self._lease_ms())
            with self._lock:
                lease = self._held.get(shard)
                if lease is None or lease.token != token:
                    continue  # handed over meanwhile
                if renewed:
                    lease.renewed = sent
                    continue
                del self._held[shard]
            log.warning("trainer %s lost its lease on shard %s (expired or taken over)", self.name, shard)
            self._schedule(self._owner_call("lost", shard))

    def _rebalance(self, target: int) -> None:
        with self._lock:
            kept = sorted(shard for shard, lease in self._held.items() if not lease.releasing)
            extras = [(shard, self._held[shard]) for shard in kept[target:]]
            for _shard, lease in extras:
                lease.releasing = True
            wanted = target - len(self._held)
        for shard, lease in extras:
            log.info("trainer %s hands shard %s over (fair share %s)", self.name, shard, target)
            self._schedule(self._hand_over_call(shard, lease.token))
        if wanted > 0:
            self._claim(wanted)

    def _claim(self, wanted: int) -> None:
        start = zlib.crc32(self.name.encode()) % self.shards  # trainers starting together try different shards
        order = [(start + i) % self.shards for i in range(self.shards)]
        values = self.client.mget([lease_key(shard) for shard in order])
        for shard, value in zip(order, values, strict=True):
            if wanted <= 0:
                return
            if value is not None:
                continue
            token = f"{self.name}/{uuid.uuid4().hex[:12]}"
            sent = self._clock()
            if not self.client.set(lease_key(shard), token, nx=True, px=self._lease_ms()):
                continue  # another trainer was faster
            with self._lock:
                self._held[shard] = _Lease(token, sent)
            wanted -= 1
            log.info("trainer %s claimed shard %s", self.name, shard)
            self._schedule(self._owner_call("acquired", shard))

    def _hand_over(self, shard: int, token: str) -> None:
        """Runs in the worker's loop: the owner stops consuming and checkpoints, then the lease is deleted."""
        with self._lock:
            lease = self._held.get(shard)
            if lease is None or lease.token != token:
                return  # lost meanwhile: the lost call already stopped the queue
        try:
            if self.owner is not None:
                self.owner.releasing(shard)
        finally:
            with self._lock:
                if self._held.get(shard) is lease:
                    del self._held[shard]
            with suppress(redis.RedisError):  # Redis away: the lease expires by itself
                self.client.eval(_RELEASE, 1, lease_key(shard), token)
            log.info("trainer %s released shard %s", self.name, shard)

    def _hand_over_call(self, shard: int, token: str) -> Callable[[], None]:
        return lambda: self._hand_over(shard, token)

    def _owner_call(self, method: str, shard: int) -> Callable[[], None]:
        def call() -> None:
            if self.owner is not None:
                getattr(self.owner, method)(shard)

        return call

    def _schedule(self, action: Callable[[], None]) -> None:
        with self._lock:
            self._pending.append(action)
        if self._call_soon is None:
            self._drain()
        else:
            self._call_soon(self._drain)

    def _drain(self) -> None:
        """Run the queued owner calls in the order they were queued (never raises into the worker's loop)."""
        while True:
            with self._lock:
                if not self._pending:
                    return
                action = self._pending.popleft()
            try:
                action()
            except Exception:
                log.exception("trainer shard change failed")


class WorkerShards:
    """The :class:`ShardOwner` of a trainer worker: its Celery consumer's queues and this process's learners."""

    def __init__(self, *, consumer: Any, shards: int, learners: Callable[[], Learners | None]) -> None:
        """``learners`` returns the process's cache when it exists (it is built at the first outcome)."""
        self.consumer = consumer
        self.shards = shards
        self.learners = learners

    def queue(self, shard: int) -> str:
        return shard_queue(shard, self.shards)

    def acquired(self, shard: int) -> None:
        self.consumer.add_task_queue(self.queue(shard))

    def releasing(self, shard: int) -> None:
        self._stop_consuming(shard)
        learners = self.learners()
        if learners is None:
            return
        for agent in self._agents_of(learners, shard):
            try:
                learners.checkpoint(agent)
            except (NotOwner, OSError) as exc:  # the journal keeps the outcomes for the next owner
                log.warning("%s: not checkpointed before the handover: %s", agent, exc)
            learners.forget(agent)

    def lost(self, shard: int) -> None:
        self._stop_consuming(shard)
        learners = self.learners()
        if learners is None:
            return
        for agent in self._agents_of(learners, shard):
            learners.forget(agent)  # unwritten: the lease's new holder owns the files now

    def _agents_of(self, learners: Learners, shard: int) -> list[str]:
        return [agent for agent in learners.agents() if routing.shard_of(agent, self.shards) == shard]

    def _stop_consuming(self, shard: int) -> None:
        try:
            self.consumer.cancel_task_queue(self.queue(shard))
        except Exception as exc:  # the consumer is gone (worker shutdown): nothing consumes the queue any more
            log.debug("cancel of %s: %s", self.queue(shard), exc)


def consumes(consumer: Any, queue: str) -> bool:
    """Whether this Celery consumer takes messages from ``queue`` (the trainer: ``-Q training``)."""
    task_consumer = getattr(consumer, "task_consumer", None)
    return task_consumer is not None and bool(task_consumer.consuming_from(queue))


def in_process_pool(consumer: Any) -> bool:
    """Whether the worker runs its tasks in its own thread (``-P solo``): the process the claims fence."""
    return type(getattr(consumer, "pool", None)).__module__ == "celery.concurrency.solo"


def start_in_worker(
    consumer: Any, *, redis_url: str, shards: int, lease_seconds: float, learners: Callable[[], Learners | None]
) -> ShardClaims:
    """Claims for a trainer worker (called at ``worker_ready``, whose sender is the consumer)."""
    claims = ShardClaims(
        client=redis.Redis.from_url(redis_url),
        shards=shards,
        lease_seconds=lease_seconds,
        name=f"{getattr(consumer, 'hostname', None) or socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}",
        owner=WorkerShards(consumer=consumer, shards=shards, learners=learners),
        call_soon=consumer.call_soon,
    )
    claims.start()
    return claims
