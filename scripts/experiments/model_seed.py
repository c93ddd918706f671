"""Experiment (docs/learning-experiments.md, seventeenth session): main's learner, unchanged, with another seed for
its own randomness (network initialisation, replay batches), ``MODEL_SEED`` in the environment; the market (its
tasks, rivals and score noise) stays the seed's.

Why: every learner change moved which public sparse runs end behind their first 500. Running main itself under
other model seeds on the same markets says how often each market keeps its first 500 when nothing but the
learner's own draw changes: a market kept one time in two is a coin, not a property of a version.
Measure with ``MODEL_SEED=N scripts/learning_sweep.py --learner scripts/experiments/model_seed.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import agentfleet.bidding.dqn as dqn
import trainer.simulator as simulator

MODEL_SEED = int(os.environ.get("MODEL_SEED", "0"))
_MODEL = getattr(dqn.ReinforcementLearning, "original", dqn.ReinforcementLearning)
_BASE = simulator.rl_focal  # kept at import: probe_run.py puts this module's rl_focal in its place


class SeededModel(_MODEL):  # type: ignore[misc, valid-type]
    original = _MODEL

    def __init__(self, agent_address: str, *, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(agent_address, seed=seed + 1_000_003 * MODEL_SEED, **kwargs)


def rl_focal(seed: int, profile: str = "balanced") -> Any:
    dqn.ReinforcementLearning = SeededModel  # type: ignore[misc]
    return _BASE(seed, profile)
