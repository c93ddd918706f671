"""The trainer worker in the fleet: outcomes from the listener train per-agent models on the shared volume."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentfleet.chain.local import advance_time
from agentfleet.services import RedisServer
from tests.chain_helpers import ETH, now
from tests.fleet_helpers import QUEUES, pump, running_fleet
from trainer.rl import ReinforcementLearning
from workers.app import app

pytestmark = pytest.mark.anvil


def test_outcomes_train_models_once_each(tmp_path: Path, redis_server: RedisServer) -> None:
    models = tmp_path / "models"
    with running_fleet(tmp_path, redis_server, queues=[*QUEUES, "training"], models_dir=models,
                       action_logging=False) as (s, listener, client):  # fmt: skip
        deadline = now(s) + 30
        for tags in (["research"], ["research", "statistics"]):
            s.tasks.create_task(s.requester, "research work", tags, deadline, 3600, s.evaluator.address, value=ETH)
        pump(listener, lambda: s.auction.bid_count(1) >= 1 and s.auction.bid_count(2) >= 1)
        advance_time(s.client.w3, 31)
        app.send_task("workers.tasks.finalize_due", queue="keeper")
        winners = lambda: {s.tasks.get_task(t).assignee for t in (1, 2)}  # noqa: E731
        pump(listener, lambda: all(s.tasks.status_of(t) == 4 for t in (1, 2)))
        pump(listener, lambda: all((models / f"{w}_rl_model.pt").exists() for w in winners()), timeout=60)

        for winner in winners():
            model = ReinforcementLearning(winner)
            model.load(models)
            assert model.version >= 1 and model.memory.size >= 1
            assert model.memory.rewards[: model.memory.size].max().item() > 0  # a won task is a profit
        again = app.send_task("trainer.tasks.record_outcome", queue="training",
                              kwargs={"agent": next(iter(winners())), "task_id": 1, "outcome": "won"})  # fmt: skip
        assert again.get(timeout=30)["status"] in {"duplicate", "no_bid_state"}
        bad = app.send_task("trainer.tasks.record_outcome", queue="training",
                            kwargs={"agent": "0x12", "task_id": 1, "outcome": "won"})  # fmt: skip
        with pytest.raises(ValueError, match="invalid outcome"):
            bad.get(timeout=30)
        assert client.exists("agentfleet:trainer:done:1:" + s.tasks.get_task(1).assignee.lower())


def test_rl_strategy_bids_inside_bounds_in_the_fleet(tmp_path: Path, redis_server: RedisServer) -> None:
    with running_fleet(tmp_path, redis_server, bidding_strategy="rl", models_dir=tmp_path / "models",
                       action_logging=False) as (s, listener, client):  # fmt: skip
        for _ in range(4):
            s.tasks.create_task(s.requester, "research", ["research"], now(s) + 300, 3600, s.evaluator.address,
                                value=ETH)  # fmt: skip
        done = lambda: len(client.keys("agentfleet:work:done:consider:*")) >= 4  # noqa: E731
        pump(listener, done)
        assert client.xlen("agentfleet:failures") == 0
        for task_id in range(1, 5):
            for bid in s.auction.get_bids(task_id):
                assert ETH * 5 // 100 <= bid.amount <= ETH
