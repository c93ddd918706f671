"""The local prefilter before the LLM, and the directory facts it reads (no chain, no Redis server needed
for the rule itself)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agentfleet.bidding.prefilter import reach


def test_reach_is_the_best_weight_the_task_names_by_tag_or_text() -> None:
    weights = {"research": 10, "data_analysis": 85, "writing": 60}
    assert reach(weights, ["research"], "Summarise five papers").weight == 10
    found = reach(weights, ["research"], "Run a data analysis of the survey")
    assert found is not None and found.weight == 85 and found.matched == ("data_analysis", "research")
    assert reach(weights, ["research"], "data-analysis, please").weight == 85  # any separator
    assert reach(weights, ["coding"], "Fix the parser").weight == 0  # names nothing the agent has
    assert reach(weights, [], "anything") is None  # untagged: the LLM decides


def test_enough_and_off_switch() -> None:
    weak = reach({"research": 10}, ["research"], "")
    assert weak is not None and not weak.enough(30) and weak.enough(10) and weak.enough(0)


@given(
    st.dictionaries(st.sampled_from(["research", "coding", "data_analysis", "art"]), st.integers(0, 100)),
    st.lists(st.sampled_from(["research", "coding", "writing"]), min_size=1, max_size=3),
    st.text(max_size=80),
)
def test_reach_is_bounded_by_the_weights_and_never_fails(weights: dict[str, int], tags: list[str], text: str) -> None:
    found = reach(weights, tags, text)
    assert found is not None
    assert 0 <= found.weight <= max(weights.values(), default=0)
    assert set(found.matched) <= set(weights)
    assert found.weight == max((weights[c] for c in found.matched), default=0)


def test_directory_standing_follows_weight_and_reputation_events(redis_client: object) -> None:
    import redis

    from agentfleet.directory import AgentDirectory, FleetAgent

    assert isinstance(redis_client, redis.Redis)
    directory = AgentDirectory(redis_client)
    directory.put(FleetAgent("0xA", "A", "research", ["research", "writing"]))
    assert directory.get("0xa").standing() is None  # written before weights were kept: the worker reads the chain
    directory.update("0xA", capabilities=["research", "writing"], weights=[80, 70], reputation=50)
    assert directory.get("0xA").standing() == ({"research": 80, "writing": 70}, 50)
    directory.set_weight("0xA", "writing", 75)
    directory.update("0xA", reputation=55)
    assert directory.get("0xA").standing() == ({"research": 80, "writing": 75}, 55)
    directory.set_weight("0xA", "coding", 40)  # a capability we do not hold: weights unknown until a full event
    assert directory.get("0xA").standing() is None
    directory.update("0xB", reputation=1)  # not this fleet's agent: ignored
    assert directory.get("0xB") is None
