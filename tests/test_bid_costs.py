"""A bid's gas is a cost in the agents' decisions: the adaptive strategy weighs it, the RL reward pays it."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentfleet.bidding.adaptive import AdaptiveBiddingStrategy
from agentfleet.bidding.context import BidContext
from agentfleet.bidding.costs import OPEN_BID_GAS, bid_cost_wei, win_chance
from agentfleet.bidding.record import BidRecord
from agentfleet.bidding.reward import Outcome, reputation_value, reward_of
from agentfleet.bidding.state import REPUTATION, STATE_SIZE
from agentfleet.profiles import AgentLearningConfig
from shell.services import RedisServer
from testkit.chain import ETH, deployed_market

# what an agent at reputation 50 saw: a failure's 10-point penalty is then paid in full (capped_move)
AT_50 = [0.5 if index == REPUTATION else 0.0 for index in range(STATE_SIZE)]


def context(**overrides: object) -> BidContext:
    values: dict[str, object] = {
        "task_id": 1,
        "reward_wei": ETH // 100,
        "tags": ["research"],
        "fit_score": 90,
        "capability_weights": {"research": 90},
        "reputation": 60,
        "competing_bids": 4,
        "recent_win_rate": 0.0,
    }
    return BidContext.model_validate({**values, **overrides})


def test_adaptive_strategy_does_not_bid_when_the_gas_exceeds_the_expected_payment() -> None:
    strategy = AdaptiveBiddingStrategy(AgentLearningConfig.get_profile("balanced"))
    free = strategy.decide(context())
    assert free.bid
    expected = win_chance(0.0, 4) * free.amount_wei  # a fifth of the bid: five bids seen, no wins yet
    assert strategy.decide(context(bid_cost_wei=int(expected) - 1)).bid
    refused = strategy.decide(context(bid_cost_wei=int(expected) + 1))
    assert not refused.bid and "gas" in refused.reason
    assert strategy.decide(context(bid_cost_wei=int(expected) + 1, recent_win_rate=1.0)).bid  # a sure winner pays


def test_the_reward_pays_the_bid_gas_whatever_the_outcome() -> None:
    agent = "0x" + "cd" * 20
    record = BidRecord(state=AT_50, action=3, reward_wei=ETH, amount_wei=ETH // 2, bid_cost_wei=ETH // 100)

    def reward(outcome: str) -> float:
        return reward_of(Outcome.model_validate({"agent": agent, "task_id": 1, "outcome": outcome}), record)

    assert reward("lost") == pytest.approx(-0.01)
    assert reward("won") == pytest.approx(0.5 - 0.01)
    assert reward("failed") == pytest.approx(reputation_value(-10, 50) - 0.01)  # the penalty valued at 50
    old = BidRecord.model_validate(
        {"state": [0.0] * STATE_SIZE, "action": 3, "reward_wei": ETH, "amount_wei": ETH // 2}
    )
    assert old.bid_cost_wei == 0  # records written before gas counted read as free bids


@pytest.mark.parametrize("kind", ["inprocess", "anvil"])
def test_the_chain_client_prices_a_bid_at_the_chain_gas_price(kind: str, tmp_path: Path) -> None:
    with deployed_market(kind, tmp_path, register=0) as session:
        price = session.client.gas_price()
        assert 0 < price < 10**12  # wei per gas on a local chain: below 1000 gwei
        assert bid_cost_wei(price) == OPEN_BID_GAS * price


def test_the_reward_is_money_after_the_llm_bill_and_the_winners_transactions() -> None:
    from agentfleet.bidding.costs import WINNER_GAS

    agent = "0x" + "cd" * 20
    record = BidRecord(state=AT_50, action=3, reward_wei=2 * ETH, amount_wei=ETH, bid_cost_wei=ETH // 100)
    costs = {"evaluation_usd": 3.0, "execution_usd": 30.0, "eth_per_usd": 1 / 3000, "gas_price_wei": 10**10}

    def reward(outcome: str) -> float:
        event = {"args": {"score": 50}} if outcome == "won" else None
        parsed = Outcome.model_validate({"agent": agent, "task_id": 1, "outcome": outcome, "event": event})
        return reward_of(parsed, record, **costs)

    evaluation, execution, transactions = 0.001, 0.01, WINNER_GAS * 10**10 / ETH
    assert reward("lost") == pytest.approx((-0.01 - evaluation) / 2)  # per unit of the task's reward (2 ETH)
    assert reward("won") == pytest.approx((1.0 - 0.01 - evaluation - execution - transactions) / 2)
    failed = (-0.01 - evaluation - execution - transactions) / 2 + reputation_value(-10, 50)
    assert reward("failed") == pytest.approx(failed)


def test_a_lost_tasks_would_be_execution_is_the_agents_mean_bill(redis_server: RedisServer) -> None:
    import redis

    from agentfleet.protocol import keys
    from trainer.tasks import mean_execution_usd

    client = redis.Redis.from_url(redis_server.url)
    agent = "0x" + "ef" * 20
    client.delete(keys.usage_of_agent(agent))
    assert mean_execution_usd(client, agent) == 0.0  # no execution yet
    client.hset(keys.usage_of_agent(agent), mapping={"execute_usd": "0.3", "execute_calls": "4", "fit_usd": "9"})
    assert mean_execution_usd(client, agent.upper().replace("0X", "0x")) == pytest.approx(0.075)
    client.hset(keys.usage_of_agent(agent), "execute_calls", "many")
    assert mean_execution_usd(client, agent) == 0.0  # unreadable: unknown, never an error that loses the outcome
