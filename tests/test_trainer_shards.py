"""Trainer shards: leases on shards of the agents in a real Redis, forwarding through real Celery workers, and two
trainer processes of which one is SIGKILLed while the other takes its shard over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import torch
from celery.contrib.testing.worker import start_worker

from agentfleet.bidding.dqn import ReinforcementLearning
from agentfleet.bidding.state import ACTIONS, STATE_SIZE
from agentfleet.chain.keys import derive_account
from agentfleet.protocol import keys, routing
from agentfleet.protocol.app import app
from agentfleet.settings import DEV_MNEMONIC
from shell.services import RedisServer
from testkit.listener import queued
from testkit.wait import wait_until
from trainer import tasks
from trainer.integration import LearningIntegration
from trainer.learners import Learners, Lesson, NotOwner, journal_path
from trainer.shards import LIVE, ShardClaims, WorkerShards, lease_key

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent
AGENTS = [derive_account(DEV_MNEMONIC, index).address for index in range(2, 12)]  # the fleet's agents 0..9


def agent_of(shard: int, shards: int = 2) -> str:
    return next(agent for agent in AGENTS if routing.shard_of(agent, shards) == shard)


class Recorder:
    """A ShardOwner that remembers what it was told, and checks a handover stops consuming before the lease
    is deleted."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.claims: ShardClaims | None = None
        self.consuming: set[int] = set()
        self.events: list[tuple[str, int]] = []

    def acquired(self, shard: int) -> None:
        self.consuming.add(shard)
        self.events.append(("acquired", shard))

    def releasing(self, shard: int) -> None:
        assert self.claims is not None
        held = self.client.get(lease_key(shard))
        assert held is not None and held.decode().startswith(self.claims.name)  # still ours while it stops
        self.consuming.discard(shard)
        self.events.append(("releasing", shard))

    def lost(self, shard: int) -> None:
        self.consuming.discard(shard)
        self.events.append(("lost", shard))


def claims(client: redis.Redis, name: str, shards: int = 2, lease: float = 30.0) -> tuple[ShardClaims, Recorder]:
    recorder = Recorder(client)
    made = ShardClaims(client=client, shards=shards, lease_seconds=lease, name=name, owner=recorder)
    recorder.claims = made
    return made, recorder


def holders(client: redis.Redis, shards: int) -> list[str | None]:
    """Who holds each shard's lease, by trainer name."""
    values = client.mget([lease_key(shard) for shard in range(shards)])
    return [None if value is None else value.decode().split("/")[0] for value in values]


def test_an_agent_has_the_same_shard_in_every_process() -> None:
    script = (
        "import json, sys; from agentfleet.protocol.routing import training_queue as q; "
        "print(json.dumps([[q(a, n) for n in (1, 2, 4, 16)] for a in json.loads(sys.argv[1])]))"
    )
    mixed = [agent.lower() if number % 2 else agent for number, agent in enumerate(AGENTS)]  # case does not matter
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # another str hash: the shard must not depend on it
    out = subprocess.run(
        [sys.executable, "-c", script, json.dumps(mixed)], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    here = [[routing.training_queue(agent, n) for n in (1, 2, 4, 16)] for agent in AGENTS]
    assert json.loads(out.stdout) == here
    assert {row[0] for row in here} == {routing.TRAINING}  # one shard: the plain queue, as before sharding
    assert {row[1] for row in here} == {"training.0", "training.1"}  # ten agents land on both shards
    assert all(row[2] in routing.training_queues(4) for row in here)


@pytest.mark.parametrize("shards", [2, 4])
def test_two_trainers_split_the_shards_fairly_and_never_hold_the_same(redis_client: redis.Redis, shards: int) -> None:
    first, first_owner = claims(redis_client, "first", shards)
    second, second_owner = claims(redis_client, "second", shards)
    first.beat()
    assert first.owned == set(range(shards))  # alone: every shard
    second.beat()
    assert second.owned == set()  # nothing free yet; the first sees two live trainers at its next beat
    first.beat()
    assert len(first.owned) == shards // 2  # handed the extras over: stopped consuming, then deleted the lease
    second.beat()
    assert first.owned | second.owned == set(range(shards)) and not first.owned & second.owned
    assert len(second.owned) == shards // 2
    assert holders(redis_client, shards) == ["first" if s in first.owned else "second" for s in range(shards)]
    assert first_owner.consuming == first.owned and second_owner.consuming == second.owned
    assert [kind for kind, _ in first_owner.events].count("releasing") == shards // 2
    for _ in range(3):  # stable: no more changes
        first.beat()
        second.beat()
    assert len(first_owner.events) == shards + shards // 2 and len(second_owner.events) == shards // 2
    first.close()
    assert holders(redis_client, shards).count(None) == shards // 2  # shutdown releases at once, no lease to wait
    second.beat()
    assert second.owned == set(range(shards))  # the only live trainer takes everything
    second.close()
    assert redis_client.zcard(LIVE) == 0 and holders(redis_client, shards) == [None] * shards


def test_heartbeating_trainers_never_trust_the_same_shard_at_once(redis_client: redis.Redis) -> None:
    shards = 4
    trainers = [claims(redis_client, name, shards, lease=1.2)[0] for name in ("a", "b", "c")]
    probes = [agent_of(shard, shards) for shard in range(shards)]

    def fair() -> bool:  # every shard held, ceil(4 / 3) = 2 each at most
        owned = [trainer.owned for trainer in trainers]
        return set().union(*owned) == set(range(shards)) and max(len(o) for o in owned) == 2

    for trainer in trainers:
        trainer.start()
    overlaps, deadline = 0, time.monotonic() + 3.0
    try:
        while time.monotonic() < deadline:  # they start together, then settle: never two trust one shard
            for agent in probes:
                overlaps += sum(trainer.token(agent) is not None for trainer in trainers) > 1
            time.sleep(0.002)
        wait_until(fair, 10, lambda: f"owned {[trainer.owned for trainer in trainers]}")
    finally:
        for trainer in trainers:
            trainer.close()
    assert overlaps == 0


def test_a_claim_not_renewed_expires_and_another_trainer_takes_it_over(redis_client: redis.Redis) -> None:
    paused, paused_owner = claims(redis_client, "paused", lease=2.0)
    other, other_owner = claims(redis_client, "other", lease=2.0)
    paused.beat()
    other.beat()
    assert paused.owned == {0, 1} and other.owned == set()
    time.sleep(1.6)  # no heartbeat: the paused trainer stops trusting its leases before Redis drops them
    assert paused.token(agent_of(0)) is None and redis_client.get(lease_key(0)) is not None
    time.sleep(0.5)
    other.beat()  # the silent trainer left the live set with its leases: the other one takes everything
    assert other.owned == {0, 1} and holders(redis_client, 2) == ["other", "other"]
    paused.beat()  # wakes up: both renewals refused
    assert paused.owned == set() and sorted(paused_owner.events[-2:]) == [("lost", 0), ("lost", 1)]
    assert paused_owner.consuming == set()
    other.beat()  # the woken trainer counts again: a fair share of one each
    paused.beat()
    assert len(paused.owned) == 1 == len(other.owned) and paused.owned != other.owned
    assert other_owner.events[-1][0] == "releasing"


class FakeConsumer:
    """The two calls a trainer's Celery consumer gets from the claims."""

    def __init__(self) -> None:
        self.queues: set[str] = set()

    def add_task_queue(self, queue: str) -> None:
        self.queues.add(queue)

    def cancel_task_queue(self, queue: str) -> None:
        self.queues.discard(queue)


def build(agent: str, models: Path) -> LearningIntegration:
    try:
        return LearningIntegration.load_state(agent, models_dir=models)
    except ValueError:
        return LearningIntegration(agent, {"research": 60.0}, ReinforcementLearning(agent), models_dir=models)


def lesson(n: int, agent: str) -> Lesson:
    return Lesson(f"{n}:{agent.lower()}", [n / 100] * STATE_SIZE, n % ACTIONS, 0.1, None)


def on_disk(agent: str, models: Path) -> int:
    model = ReinforcementLearning(agent)
    model.load(models)
    return model.decisions


def test_a_trainer_that_lost_its_lease_writes_nothing_more(redis_client: redis.Redis, tmp_path: Path) -> None:
    agent = agent_of(0)
    consumer = FakeConsumer()
    holder: dict[str, Learners] = {}
    old = ShardClaims(client=redis_client, shards=2, lease_seconds=30, name="old")
    old.owner = WorkerShards(consumer=consumer, shards=2, learners=lambda: holder.get("learners"))
    learners = holder["learners"] = Learners(tmp_path, checkpoint_every=2, checkpoint_seconds=3600, fence=old)
    old.beat()
    assert consumer.queues == {"training.0", "training.1"}
    learners.get(agent, lambda: build(agent, tmp_path))
    for n in (1, 2, 3):  # checkpoints after 1 (the first) and 3
        learners.learn(agent, lesson(n, agent))
    learners.learn(agent, lesson(4, agent))  # journaled only
    assert on_disk(agent, tmp_path) == 3 and len(journal_path(tmp_path, agent).read_text().splitlines()) == 1

    # paused past its lease (its own clock does not know yet): the lease expired and another trainer took it
    redis_client.delete(lease_key(0))
    new = ShardClaims(client=redis_client, shards=2, lease_seconds=30, name="new")
    new.beat()
    assert 0 in new.owned and old.token(agent) is not None  # the old trainer still trusts its own view
    with pytest.raises(NotOwner):
        learners.learn(agent, lesson(5, agent))  # checkpoint due: Redis says no, nothing replaced on disk
    assert on_disk(agent, tmp_path) == 3 and learners.agents() == []  # forgotten, unwritten
    learners.checkpoint_all()
    assert on_disk(agent, tmp_path) == 3

    # the new holder loads the checkpoint and the journal (outcomes 1-5: the old one's last line is there)
    taken = Learners(tmp_path, checkpoint_every=2, checkpoint_seconds=3600, fence=new)
    model = taken.get(agent, lambda: build(agent, tmp_path)).rl_model
    assert model.decisions == 5  # and outcome 5, not marked done, comes back to it as a duplicate (by its id)
    assert model.has_applied(lesson(5, agent).outcome_id)

    # a loaded agent, then the heartbeat learns the lease is gone: queue cancelled, agent forgotten, no write
    learners.get(agent_of(1), lambda: build(agent_of(1), tmp_path))
    redis_client.set(lease_key(1), "new/stolen")
    old.beat()
    assert old.owned == set() and consumer.queues == set() and learners.agents() == []
    with pytest.raises(NotOwner):
        learners.get(agent_of(1), lambda: build(agent_of(1), tmp_path))
    assert not (tmp_path / f"{agent_of(1)}_rl_model.pt").exists()


@pytest.fixture
def trainer_runtime(redis_server: RedisServer, tmp_path: Path) -> Iterator[redis.Redis]:
    """An in-process trainer runtime with two shards (an in-process chain: these outcomes never reach it)."""
    from agentfleet.chain.connect import inprocess_web3
    from agentfleet.chain.session import ChainSession
    from agentfleet.content import ResultStore, TaskTexts
    from agentfleet.directory import AgentDirectory
    from agentfleet.llm import make_provider
    from agentfleet.runtime import Runtime, use_runtime
    from agentfleet.settings import Settings

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    settings = Settings(
        redis_url=redis_server.url, trainer_shards=2, trainer_lease_seconds=5, models_dir=tmp_path / "models"
    )
    use_runtime(
        Runtime(
            settings=settings,
            redis=client,
            session=ChainSession.open(settings, w3=inprocess_web3()),
            provider=make_provider(settings, client),
            directory=AgentDirectory(client),
            results=ResultStore(client),
            texts=TaskTexts(client),
        )
    )
    app.conf.broker_url = redis_server.url
    app.conf.result_backend = redis_server.url
    try:
        yield client
    finally:
        tasks.use_claims(None)
        use_runtime(None)
        client.close()


def outcome(agent: str, task_id: int = 1) -> dict[str, object]:
    return {"agent": agent, "task_id": task_id, "outcome": "lost"}


def test_an_outcome_of_another_trainers_shard_is_forwarded(trainer_runtime: redis.Redis) -> None:
    client = trainer_runtime
    mine = ShardClaims(client=client, shards=2, lease_seconds=5, name="mine")
    theirs = ShardClaims(client=client, shards=2, lease_seconds=5, name="theirs")
    for trainer in (mine, theirs, mine, theirs):
        trainer.beat()
    (own,), (other,) = mine.owned, theirs.owned
    other_queue = f"{routing.TRAINING}.{other}"
    tasks.use_claims(mine)
    options = {"pool": "solo", "perform_ping_check": False, "shutdown_timeout": 30}
    with start_worker(app, queues=[routing.TRAINING], **options):  # type: ignore[arg-type]
        sent = app.send_task(routing.RECORD_OUTCOME, queue=routing.TRAINING, kwargs=outcome(agent_of(other)))
        assert sent.get(timeout=30) == {"status": "forwarded", "queue": other_queue}
        learned = app.send_task(routing.RECORD_OUTCOME, queue=routing.TRAINING, kwargs=outcome(agent_of(own)))
        assert learned.get(timeout=30) == {"status": "no_bid_state"}  # its own shard: learned here, not forwarded
    assert [m["kwargs"] for m in queued(client, other_queue)] == [{**outcome(agent_of(other)), "event": None}]
    assert client.exists(keys.trainer_done(f"1:{agent_of(own).lower()}"))

    # consuming the other shard's queue without its lease (a handover in flight): not sent round but retried
    # into that queue (the only one this worker consumes now), where the next holder learns it
    with start_worker(app, queues=[other_queue], **options):  # type: ignore[arg-type]
        looped = app.send_task(routing.RECORD_OUTCOME, queue=other_queue, kwargs=outcome(agent_of(other), 2))
        wait_until(lambda: looped.state == "RETRY", 30, lambda: f"state {looped.state}")
        done = [keys.trainer_done(f"{task}:{agent_of(other).lower()}") for task in (1, 2)]
        assert client.exists(*done) == 0 and client.llen(routing.TRAINING) == 0
        theirs.close()  # the other trainer stops: this one takes its shard and learns both waiting outcomes
        mine.beat()
        assert mine.owned == {0, 1}
        assert looped.get(timeout=30) == {"status": "no_bid_state"}
        wait_until(lambda: client.exists(*done) == 2, 30, "the forwarded outcome learned")
    mine.close()


@pytest.mark.slow
@pytest.mark.anvil
def test_a_killed_trainers_shard_is_taken_over_and_learned(tmp_path: Path, redis_server: RedisServer) -> None:
    from agentfleet.bidding.record import BidRecord, store_bid_state
    from testkit.chain import ETH, deployed_market, fleet_env

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    models, lease = tmp_path / "models", 5
    with deployed_market("anvil", tmp_path, register=1) as s:
        s.registry.register(s.agent(3), "AnalyticsAgent", ["research", "statistics"], [60, 90])
        by_shard = {routing.shard_of(a, 2): a for a in (s.agent(0).address, s.agent(3).address)}
        assert set(by_shard) == {0, 1}
        env = fleet_env(
            s, redis_server.url, models_dir=models, trainer_shards=2, trainer_lease_seconds=lease, visibility_timeout=10
        )
        app.conf.broker_url = redis_server.url
        app.conf.result_backend = redis_server.url

        def send(agent: str, task_ids: range, queue: str) -> None:
            for task_id in task_ids:
                record = BidRecord(state=[task_id / 100] * STATE_SIZE, action=3, reward_wei=ETH, amount_wei=ETH // 2)
                store_bid_state(client, task_id, agent, record)
                app.send_task(routing.RECORD_OUTCOME, queue=queue, kwargs=outcome(agent, task_id))

        def learned(agent: str) -> int:
            return len(client.keys(keys.trainer_done(f"*:{agent.lower()}")))

        command = [str(Path(sys.executable).with_name("celery")), "-A", "workers", "worker", "-Q", routing.TRAINING]
        command += ["-P", "solo", "--without-gossip", "--without-mingle", "--loglevel", "WARNING"]
        trainers = {
            name: subprocess.Popen(
                [*command, "-n", f"{name}@%h"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            for name in ("one", "two")
        }
        try:
            split = lambda: sorted(h.split("@")[0] for h in holders(client, 2) if h) == ["one", "two"]  # noqa: E731
            wait_until(split, 40, lambda: f"leases {holders(client, 2)}", interval=0.1)
            for agent in by_shard.values():  # the listener's way: each agent's outcomes to its shard's queue
                send(agent, range(1, 6), routing.training_queue(agent, 2))
            wait_until(lambda: all(learned(a) == 5 for a in by_shard.values()), 30, "both shards learned", interval=0.1)

            victim_shard = 0
            victim = holders(client, 2)[victim_shard].split("@")[0]  # type: ignore[union-attr]
            agent = by_shard[victim_shard]
            trainers[victim].send_signal(signal.SIGKILL)
            trainers[victim].wait(timeout=10)
            killed = time.monotonic()
            send(agent, range(6, 11), routing.training_queue(agent, 2))
            send(agent, range(11, 13), routing.TRAINING)  # hand-sent to the plain queue: forwarded if need be
            survivor = next(name for name in trainers if name != victim)
            wait_until(
                lambda: (holders(client, 2)[victim_shard] or "").startswith(survivor),
                2 * lease,
                lambda: f"leases {holders(client, 2)}",
                interval=0.1,
            )
            taken_over = time.monotonic() - killed
            wait_until(lambda: learned(agent) == 12, 30, lambda: f"{learned(agent)} of 12 learned", interval=0.1)
        finally:
            for process in trainers.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    process.wait(timeout=30)
        assert taken_over <= lease + lease / 3 + 1.5  # a lease and one heartbeat, give or take a beat's work
        assert holders(client, 2) == [None, None] and client.zcard(LIVE) == 0  # the survivor released at shutdown
        model = ReinforcementLearning(agent)
        model.load(models)  # the survivor's checkpoint at shutdown: the victim's journal replayed, then the rest
        # two transitions per outcome: the bid placed and abstaining (no task on chain: no price to beat)
        assert model.memory.size == 2 * 12 and sorted(model.applied) == sorted(
            f"{n}:{agent.lower()}" for n in range(1, 13)
        )
