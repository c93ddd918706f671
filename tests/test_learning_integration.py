"""LearningIntegration, the seed's API: results move capabilities, once per task; state round-trips; bad
input is refused with the field's name before anything changes."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest

from agentfleet.bidding.dqn import ReinforcementLearning
from trainer.integration import LearningIntegration

AGENT = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"


def test_seed_usage_round_trip(tmp_path: Path) -> None:
    rl_model = ReinforcementLearning(
        agent_address=AGENT, learning_rate=0.001, discount_factor=0.95, exploration_rate=0.1
    )
    learning = LearningIntegration(
        agent_address=AGENT,
        initial_capabilities={"analysis": 60, "generation": 70, "classification": 50, "research": 40},
        rl_model=rl_model,
        reputation=50,
        confidence_factor=80,
        risk_tolerance=60,
        models_dir=tmp_path,
    )
    assert learning.process_task_result("task_123", "analysis", 85, 200, {"analysis": 85, "research": 80})
    assert not learning.process_task_result("task_123", "analysis", 85, 200, {"analysis": 85})  # once
    caps = learning.get_capabilities()
    assert caps["analysis"] == round(60 + (85 - 60) * 0.25) and caps["research"] == 50
    assert caps["generation"] == 70  # untouched tags stay
    assert learning.moved_beyond({"analysis": 60, "generation": 70, "classification": 50, "research": 40}, 5)
    assert learning.process_task_result("task_124", "analysis", 100, 10, ["analysis"])
    assert learning.get_capabilities()["analysis"] == round(66.25 + (100 - 66.25) * 0.25)

    learning.save_state()
    restored = LearningIntegration.load_state(AGENT, models_dir=tmp_path)
    assert restored.get_capabilities() == learning.get_capabilities()
    report = restored.generate_report()
    assert report["tasks_processed"] == 2 and report["total_reward"] == 210 and report["model_version"] == 1


def test_missing_or_corrupt_state_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot load learning state"):
        LearningIntegration.load_state(AGENT, models_dir=tmp_path)
    (tmp_path / f"{AGENT}_state.json").write_text("{broken")
    with pytest.raises(ValueError, match="cannot load learning state"):
        LearningIntegration.load_state(AGENT, models_dir=tmp_path)


VALID: dict[str, Any] = {"task_id": 7, "task_type": "analysis", "score": 80, "reward": 1.5, "tags": ["analysis"]}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("score", 185, "score must be 0..100, got 185"),
        ("score", -1, "score must be 0..100, got -1"),
        ("score", 100.5, "score must be 0..100, got 100.5"),
        ("score", math.nan, "score must be 0..100, got nan"),
        ("score", "85", "score must be a number, got str '85'"),
        ("score", True, "score must be a number, got bool True"),
        ("score", None, "score must be a number, got NoneType None"),
        ("reward", -0.01, "reward must be >= 0, got -0.01"),
        ("reward", math.inf, "reward must be >= 0, got inf"),
        ("reward", "10", "reward must be a number, got str"),
        ("reward", False, "reward must be a number, got bool"),
        ("reward", None, "reward must be a number, got NoneType"),
        ("tags", "analysis", "tags must be a list of tag names or a dict tag -> score, got str"),
        ("tags", ("analysis",), "tags must be a list .* got tuple"),
        ("tags", None, "tags must be a list .* got NoneType"),
        ("tags", ["analysis", 3], r"tags\[1\] must be a str, got int 3"),
        ("tags", {"analysis": 185}, r"tags\['analysis'\] must be 0..100, got 185"),
        ("tags", {"analysis": math.nan}, r"tags\['analysis'\] must be 0..100, got nan"),
        ("task_id", None, "task_id must be a str or int, got NoneType"),
        ("task_id", True, "task_id must be a str or int, got bool"),
        ("task_type", "", "task_type must be a non-empty str"),
        ("task_type", None, "task_type must be a non-empty str, got NoneType"),
    ],
)
def test_invalid_results_are_refused_naming_the_field_and_change_nothing(
    tmp_path: Path, field: str, value: Any, message: str
) -> None:
    learning = LearningIntegration(AGENT, {"analysis": 60, "research": 40}, models_dir=tmp_path)
    assert learning.process_task_result(1, "analysis", 90, 2, ["analysis"])
    before = (copy.deepcopy(learning.capabilities), copy.deepcopy(learning.history))

    with pytest.raises(ValueError, match=message):
        learning.process_task_result(**{**VALID, field: value})
    assert (learning.capabilities, learning.history) == before
    assert learning.process_task_result(**VALID)  # the same task, valid: learned once, now


@pytest.mark.parametrize(("score", "reward"), [(0, 0), (100, 0.0), (55.5, 10**18), (0.0, 1.5)])
def test_boundary_values_are_accepted(tmp_path: Path, score: float, reward: float) -> None:
    learning = LearningIntegration(AGENT, {"analysis": 60}, models_dir=tmp_path)
    assert learning.process_task_result("t", "analysis", score, reward, {"analysis": score})
    assert learning.generate_report()["total_reward"] == reward
