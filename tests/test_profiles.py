"""Learning profiles, agent definitions from a file, the adaptive strategy's bounds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentfleet import policy
from agentfleet.bidding.adaptive import AdaptiveBiddingStrategy
from agentfleet.bidding.context import BidContext
from agentfleet.profiles import AGENT_TYPES, AgentLearningConfig, load_agent_definitions


def test_six_seed_profiles_and_custom_ones() -> None:
    assert set(AgentLearningConfig.PROFILES) == {
        "balanced",
        "aggressive",
        "conservative",
        "explorer",
        "specialist",
        "workload_sensitive",
    }
    custom = AgentLearningConfig.create_custom_profile("conservative", learning_rate=0.1, exploration_rate=0.15)
    assert custom.learning_rate == 0.1 and custom.exploration_rate == 0.15
    assert custom.min_fit_to_bid == AgentLearningConfig.get_profile("conservative").min_fit_to_bid
    with pytest.raises(ValueError, match="unknown learning profile 'reckless'"):
        AgentLearningConfig.create_custom_profile("reckless")
    with pytest.raises(ValueError, match="unknown learning profile field"):
        AgentLearningConfig.create_custom_profile("balanced", learning_speed=2)
    with pytest.raises(ValueError, match="exploration_rate"):
        AgentLearningConfig.create_custom_profile("balanced", exploration_rate=1.5)


def test_agent_definitions_file(tmp_path: Path) -> None:
    good = tmp_path / "agents.json"
    entry = {"name": "CustomAgent", "capabilities": ["custom_1", "custom_2"], "profile": "balanced"}
    good.write_text(json.dumps([entry]))
    (agent,) = load_agent_definitions(good)
    assert agent.weights == [80, 80] and agent.queue == "research"
    for broken, message in [
        ("{not json", "cannot read"),
        ('{"name": "x"}', "expected a JSON list"),
        ('[{"name": "x", "capabilities": []}]', "agent #0"),
        ('[{"name": "x", "capabilities": ["a"], "profile": "nope"}]', "unknown learning profile"),
        ('[{"name": "x", "capabilities": ["a", "a"]}]', "unique"),
    ]:
        good.write_text(broken)
        with pytest.raises(ValueError, match=message):
            load_agent_definitions(good)
    assert len(AGENT_TYPES) == 5


@given(
    fit=st.floats(0, 100),
    reputation=st.integers(0, 100),
    workload=st.integers(0, 50),
    advice=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    profile=st.sampled_from(sorted(AgentLearningConfig.PROFILES)),
)
def test_adaptive_strategy_never_leaves_policy_bounds(
    fit: float, reputation: int, workload: int, advice: float | None, profile: str
) -> None:
    reward = 3 * 10**18
    ctx = BidContext(
        task_id=1,
        reward_wei=reward,
        tags=["research"],
        fit_score=fit,
        capability_weights={"research": 90},
        reputation=reputation,
        workload=workload,
        llm_fraction=advice,
    )
    decision = AdaptiveBiddingStrategy(AgentLearningConfig.get_profile(profile)).decide(ctx)
    if decision.bid:
        assert policy.MIN_BID_FRACTION * reward <= decision.amount_wei <= reward
    else:
        assert decision.amount_wei == 0 and "below" in decision.reason
