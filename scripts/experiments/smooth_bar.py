"""Experiment (docs/learning-experiments.md, twelfth session): the fit bar lowered gradually near the cap instead
of in one step at ``OPEN_BAR_FROM``: the profile's bar at ``SMOOTH_FROM`` (default 70), falling linearly to the
bar minus ``OPEN_BAR_DROP`` at ``OPEN_BAR_FROM`` (90) and above.

Why try it: the step is a cliff. At 100 the learner bids on weak-tag tasks a low rival would take (its
hindsight values the rival's climb), fails most of them, drops under 90, the bar closes every such tag at
once and the rival climbs anyway (sparse 11 from task 1155, specialist 16 from task 2419: a rival at 20-49
takes the tasks the learner left at 70-89). Under a gradual bar the weakest tags close first and the ones
it passes more often stay open a little longer. Measure with ``scripts/learning_sweep.py --learner
scripts/experiments/smooth_bar.py``.
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
from agentfleet.protocol.limits import INITIAL_REPUTATION

SMOOTH_FROM = int(os.environ.get("SMOOTH_FROM", "70"))
_BASE_BAR = rl.fit_bar
_BASE = simulator.rl_focal


def fit_bar(profile: LearningProfile, reputation: int, strongest: float = 100.0) -> float:
    if reputation < INITIAL_REPUTATION:
        return _BASE_BAR(profile, reputation, strongest)  # the guard under 50 as it is
    span = max(1, rl.OPEN_BAR_FROM - SMOOTH_FROM)
    opened = min(1.0, max(0.0, (reputation - SMOOTH_FROM) / span))
    return max(0.0, profile.min_fit_to_bid - rl.OPEN_BAR_DROP * opened)


def rl_focal(seed: int, profile: str = "balanced") -> Any:
    rl.fit_bar = fit_bar  # type: ignore[assignment]
    simulator.fit_bar = fit_bar  # type: ignore[attr-defined]
    return _BASE(seed, profile)
