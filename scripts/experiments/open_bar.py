"""Experiment (docs/learning-experiments.md, ninth session): the learner's fit bar lowered to ``OPEN_BAR`` while its
reputation is at least ``OPEN_FROM``, so the model (with its hindsight rewards) decides on weak-tag tasks too.

Why try it: at reputation 100 a failure's lost points come back with the next passed task of a strong tag (a
pass there moves more than the cap leaves), and a weak-tag task left to a rival lets that rival climb and set
the price of the strong tag (specialist 16: the aggressive rival rose from 24 to 90 on blockchain and coding,
where the learner never bid, and halved its research price). Measure with ``scripts/learning_sweep.py --learner
scripts/experiments/open_bar.py``; OPEN_BAR and OPEN_FROM in the environment change the constants.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import agentfleet.bidding.rl as rl
import trainer.simulator as simulator
from agentfleet.profiles import LearningProfile

OPEN_BAR = float(os.environ.get("OPEN_BAR", "25"))
OPEN_FROM = int(os.environ.get("OPEN_FROM", "90"))
_BASE_BAR = rl.fit_bar
_BASE = simulator.rl_focal


def fit_bar(profile: LearningProfile, reputation: int, strongest: float = 100.0) -> float:
    bar = _BASE_BAR(profile, reputation, strongest)
    return min(bar, OPEN_BAR) if reputation >= OPEN_FROM else bar


def rl_focal(seed: int, profile: str = "balanced") -> Any:
    rl.fit_bar = fit_bar  # type: ignore[assignment]
    simulator.fit_bar = fit_bar  # type: ignore[attr-defined]
    return _BASE(seed, profile)
