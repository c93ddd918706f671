"""Experiment (docs/learning-experiments.md, twelfth session): the open bar kept open through a dip, a
hysteresis: the bar is lowered at ``OPEN_BAR_FROM`` (90) and above as in main, and also down to ``KEEP_FROM``
(default 70) while the agent was at 90 or more within its last ``MEMORY`` tasks (default 100).

Why try it: the cliff at 90 (sparse 11, specialist 16): the learner's failures on the weak-tag tasks it bid on
to keep a low rival down take it under 90, the bar closes those tags at once and the rival climbs on them.
Unlike the open bar from 70 (eleventh session, worse), an agent climbing from 50 keeps the profile's bar.
The fleet would need the agent's recent reputations (not kept today); the simulator keeps them here. Measure
with ``scripts/learning_sweep.py --learner scripts/experiments/bar_memory.py``.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import agentfleet.bidding.rl as rl
import trainer.simulator as simulator
from agentfleet.bidding.context import BidContext
from agentfleet.profiles import LearningProfile

KEEP_FROM = int(os.environ.get("KEEP_FROM", "70"))
MEMORY = int(os.environ.get("MEMORY", "100"))
_BASE_BAR = rl.fit_bar
_BASE = simulator.rl_focal
_seen: deque[int] = deque(maxlen=MEMORY)  # the focal agent's reputation per task, this run


def fit_bar(profile: LearningProfile, reputation: int, strongest: float = 100.0) -> float:
    bar = _BASE_BAR(profile, reputation, strongest)
    if KEEP_FROM <= reputation < rl.OPEN_BAR_FROM and any(r >= rl.OPEN_BAR_FROM for r in _seen):
        return max(0.0, profile.min_fit_to_bid - rl.OPEN_BAR_DROP)
    return bar


def rl_focal(seed: int, profile: str = "balanced") -> Any:
    rl.fit_bar = fit_bar  # type: ignore[assignment]
    simulator.fit_bar = fit_bar  # type: ignore[attr-defined]
    _seen.clear()
    decide, learn = _BASE(seed, profile)

    def remembering(ctx: BidContext) -> Any:
        _seen.append(ctx.reputation)
        return decide(ctx)

    return remembering, learn
