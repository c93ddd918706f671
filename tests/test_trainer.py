"""The trainer worker in the fleet: outcomes from the listener train per-agent models on the shared volume."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentfleet.bidding.dqn import ReinforcementLearning
from agentfleet.bidding.market import RedisMarket
from agentfleet.bidding.record import recent_win_rate
from agentfleet.bidding.reward import reputation_moved
from agentfleet.bidding.state import ACTIONS, REPUTATION, STATE_SIZE
from agentfleet.chain.local import advance_time
from agentfleet.policy import checksum_address
from agentfleet.protocol import keys, routing
from agentfleet.protocol.app import app
from agentfleet.protocol.limits import FAILURE_PENALTY, PASS_SCORE
from agentfleet.protocol.status import AuctionMode, TaskStatus
from shell.services import RedisServer
from testkit.chain import ETH, bids_on, create_task
from testkit.fleet import QUEUES, pump, running_fleet
from testkit.wait import wait_until

pytestmark = pytest.mark.anvil


def test_outcomes_train_models_once_each(tmp_path: Path, redis_server: RedisServer) -> None:
    models = tmp_path / "models"
    with running_fleet(  # a checkpoint per outcome: the files read below hold every outcome
        tmp_path,
        redis_server,
        queues=[*QUEUES, routing.TRAINING],
        models_dir=models,
        action_logging=False,
        trainer_checkpoint_every=1,
    ) as (s, listener, client):
        for tags, mode in ((["research"], AuctionMode.OPEN), (["research", "statistics"], AuctionMode.SEALED)):
            create_task(s, tags=tags, window=30, mode=mode, text="research work")
        pump(listener, lambda: bool(bids_on(s, 1, client)) and bool(bids_on(s, 2, client)))
        advance_time(s.client.w3, 31)
        app.send_task(routing.FINALIZE_DUE, queue=routing.KEEPER)
        winners = lambda: {s.tasks.get_task(t).assignee for t in (1, 2)}  # noqa: E731
        pump(listener, lambda: all(s.tasks.status_of(t) == TaskStatus.COMPLETED for t in (1, 2)))
        pump(listener, lambda: all((models / f"{w}_rl_model.pt").exists() for w in winners()), timeout=60)

        for winner in winners():
            model = ReinforcementLearning(winner)
            model.load(models)
            assert model.version >= 1 and model.memory.size >= 1
            assert model.memory.rewards[: model.memory.size].max().item() > 0  # a won task is a profit
            assert (models / f"{winner}_state.json").exists()
        again = app.send_task(
            routing.RECORD_OUTCOME,
            queue=routing.TRAINING,
            kwargs={"agent": next(iter(winners())), "task_id": 1, "outcome": "won"},
        )
        assert again.get(timeout=30)["status"] in {"duplicate", "no_bid_state"}
        expected: dict[tuple[str, str], list[int]] = {}  # each completed task's move, once, on each of its tags
        scores: dict[tuple[str, str], list[int]] = {}  # and its score, for the agent's next fit on the tags
        for task_id, tags in ((1, ["research"]), (2, ["research", "statistics"])):
            task = s.tasks.get_task(task_id)
            moved = reputation_moved(task.score) if task.score >= PASS_SCORE else -FAILURE_PENALTY
            for tag in tags:
                expected.setdefault((tag, task.assignee), []).append(moved)
                scores.setdefault((tag, task.assignee), []).append(task.score)
        for (tag, agent), moves in expected.items():  # the hand-sent duplicate above added nothing
            assert sorted(int(m) for m in client.lrange(keys.moves(tag, agent), 0, -1)) == sorted(moves)
            assert sorted(RedisMarket(client).scores([tag], agent)) == sorted(scores[tag, agent])
        bad = app.send_task(
            routing.RECORD_OUTCOME, queue=routing.TRAINING, kwargs={"agent": "0x12", "task_id": 1, "outcome": "won"}
        )
        with pytest.raises(ValueError, match="invalid outcome"):
            bad.get(timeout=30)
        assert client.exists(keys.trainer_done("1:" + s.tasks.get_task(1).assignee.lower()))
        for winner in winners():  # the next bid's state carries the agent's recent win rate
            assert recent_win_rate(client, winner) > 0
        pump(listener, lambda: client.llen(keys.market("research")) >= 2, timeout=30)  # both auctions' prices
        market = RedisMarket(client).read(["research", "statistics"])
        assert {c.task_id for c in market[0]} == {1, 2} and [c.task_id for c in market[1]] == [2]
        for clearing in market[0]:
            task = s.tasks.get_task(clearing.task_id)
            assert clearing.winner == task.assignee.lower() and clearing.bidders == len(
                bids_on(s, clearing.task_id, client)
            )
            assert 0 < clearing.weighted <= task.price / task.reward  # price / reward / (reputation + 1)
        again = app.send_task(routing.RECORD_CLEARING, queue=routing.TRAINING, kwargs={"task_id": 2, "event": None})
        with pytest.raises(ValueError, match="invalid clearing"):
            again.get(timeout=30)
        bidders = {a for t in (1, 2) for a in bids_on(s, t, client)}
        for loser in bidders - {w.lower() for w in winners()}:
            pump(listener, lambda a=loser: client.llen(keys.recent_bids(a)) >= 1, timeout=30)  # type: ignore[misc]
            assert recent_win_rate(client, loser) < 1
            name = checksum_address(loser)
            pump(listener, lambda a=name: (models / f"{a}_rl_model.pt").exists(), timeout=30)  # type: ignore[misc]
            model = ReinforcementLearning(name)
            model.load(models)
            # A lost auction with its price known teaches every level: those over the price lost, those under
            # it are valued at the score the bid's fit expects (reward.hindsight).
            assert model.memory.size >= ACTIONS and model.memory.size % ACTIONS == 0


def test_rl_strategy_bids_inside_bounds_in_the_fleet(tmp_path: Path, redis_server: RedisServer) -> None:
    with running_fleet(
        tmp_path, redis_server, bidding_strategy="rl", rl_warmup=0, models_dir=tmp_path / "models", action_logging=False
    ) as (s, listener, client):
        for number in range(4):
            create_task(s, window=300, mode=AuctionMode(number % 2), text="research")
        done = lambda: len(client.keys(f"{keys.WORK}:done:consider:*")) >= 4  # noqa: E731
        pump(listener, done)
        assert client.xlen(keys.FAILURES) == 0
        for task_id in range(1, 5):
            for amount in bids_on(s, task_id, client).values():
                assert ETH * 5 // 100 <= amount <= ETH


@pytest.mark.slow
def test_trainer_killed_mid_update_loses_no_outcome(tmp_path: Path, redis_server: RedisServer) -> None:
    import signal
    import subprocess
    import sys
    import time

    import redis as redis_lib

    from agentfleet.bidding.record import BidRecord, store_bid_state
    from agentfleet.protocol.inbox import Letter, TrainingInbox, outcome_done_id
    from testkit.chain import deployed_market, fleet_env

    client = redis_lib.Redis.from_url(redis_server.url)
    client.flushall()
    models = tmp_path / "models"
    with deployed_market("anvil", tmp_path, register=1) as s:
        agent = s.agent(0).address
        env = fleet_env(s, redis_server.url, models_dir=models, visibility_timeout=10, unacked_restore_interval=1)
        app.conf.broker_url = redis_server.url
        app.conf.result_backend = redis_server.url
        count = 40
        inbox = TrainingInbox(client, resend_after=15)  # the reconciler's sweep, run by the test below
        for task_id in range(1, count + 1):
            record = BidRecord(state=[0.5] * STATE_SIZE, action=3, reward_wei=ETH, amount_wei=ETH // 2)
            store_bid_state(client, task_id, agent, record)
            kwargs = {"agent": agent, "task_id": task_id, "outcome": "lost"}
            app.send_task(routing.RECORD_OUTCOME, queue=routing.TRAINING, kwargs=kwargs)
            with client.pipeline() as pipe:  # posted as the listener posts its sends
                inbox.post(
                    Letter(outcome_done_id(task_id, agent), routing.RECORD_OUTCOME, routing.TRAINING, kwargs), pipe=pipe
                )
                pipe.execute()
        command = [
            str(Path(sys.executable).with_name("celery")),
            "-A",
            "workers",
            "worker",
            "-Q",
            routing.TRAINING,
            "-P",
            "solo",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "WARNING",
        ]
        root = Path(__file__).resolve().parent.parent
        done = lambda: len(client.keys(keys.trainer_done("*")))  # noqa: E731
        logs = [tmp_path / "first.log", tmp_path / "second.log"]
        first = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=logs[0].open("wb"))
        deadline = time.monotonic() + 60
        while done() < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        assert done() < count, "the kill came too late to test anything"
        second = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=logs[1].open("wb"))

        def missing() -> str:
            learned = {k.decode().rsplit(":", 2)[-2] for k in client.keys(keys.trainer_done("*"))}
            lost = sorted(set(range(1, count + 1)) - {int(t) for t in learned if t.isdigit()})
            tails = "\n".join(f"{log.name}: {log.read_text(errors='replace')[-3000:]}" for log in logs)
            return f"{done()} of {count} outcomes learned; missing tasks {lost}\n{tails}"

        def learned() -> bool:  # a message the kill took between Redis and the unacked index comes back here
            inbox.redeliver(app)
            return done() >= count

        try:
            wait_until(learned, 90, missing, interval=0.2)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=30)
        assert done() == count  # no outcome lost
        assert inbox.pending() == 0  # every letter settled by the trainer
        model = ReinforcementLearning(agent)
        model.load(models)  # a complete model on disk
        per = 2  # transitions per outcome: the bid placed and abstaining (no task on chain: no price to beat)
        assert per * count <= model.memory.size <= per * (count + 1)  # at most the update in flight repeats


def test_reward_counts_profit_and_the_reputation_the_task_moved() -> None:
    from agentfleet.bidding.record import BidRecord
    from agentfleet.bidding.reward import Outcome, reputation_value, reward_of

    agent = "0x" + "ab" * 20
    state = [0.5 if index == REPUTATION else 0.0 for index in range(STATE_SIZE)]  # at 50: moves are not capped
    record = BidRecord(state=state, action=1, amount_wei=6 * 10**17, reward_wei=10**18)

    def reward(outcome: str, args: dict[str, object] | None = None) -> float:
        event = None if args is None else {"args": args}
        return reward_of(
            Outcome.model_validate({"agent": agent, "task_id": 1, "outcome": outcome, "event": event}), record
        )

    assert reward("won", {"score": 90, "passed": True}) == pytest.approx(0.6 + reputation_value(8, 50))
    assert reward("won", {"score": 50, "passed": True}) == pytest.approx(0.6)
    assert reward("won") == pytest.approx(0.6)  # no score in the message: the price alone
    assert reward("won", {"score": "ninety"}) == pytest.approx(0.6)  # a malformed score is ignored
    assert reward("failed", {"score": 20, "passed": False}) == pytest.approx(reputation_value(-10, 50))
    assert reward("lost") == 0.0
