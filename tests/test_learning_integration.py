"""LearningIntegration, the seed's API: results move capabilities, once per task; state round-trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.integration import LearningIntegration
from trainer.rl import ReinforcementLearning

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
    learning.process_task_result("task_124", "analysis", 1000, 10, ["analysis"])  # out of range: clamped
    assert 0 <= learning.get_capabilities()["analysis"] <= 100

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
