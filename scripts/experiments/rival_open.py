"""Experiment (docs/learning-experiments.md, sixteenth session): rival_state.py's 13th feature (the lowest
reputation now among the tag's recent price setters) together with a fit bar that stays open (lowered to
``OPEN_BAR``) from reputation ``OPEN_FROM`` while that rival is under ``RIVAL_LOW``.

Why try it: every bar variant so far opened or closed the bar by the agent's own reputation only, and traded
sparse 4 for sparse 2 (a weak-tag task is worth a bid only when losing it lets a low rival climb, and the bar
could not tell). Traced in sparse 11: the balanced rival at 40 climbed to 100 on creative-writing tasks (fit
26-29) the bar closed while a failure had the learner at 80-89. Here the bar opens only where such a rival is
the one to beat, and the state says who it is, so the model can learn that those bids must win. Simulator only.
Measure with ``scripts/learning_sweep.py --learner scripts/experiments/rival_open.py``; OPEN_BAR, OPEN_FROM and
RIVAL_LOW (a reputation / 100) in the environment change the constants.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rival_state import UNKNOWN
from rival_state import rl_focal as _BASE

import agentfleet.bidding.rl as rl
import trainer.simulator as simulator
from agentfleet.bidding.context import BidContext
from agentfleet.profiles import LearningProfile

OPEN_BAR = float(os.environ.get("OPEN_BAR", "25"))
OPEN_FROM = int(os.environ.get("OPEN_FROM", "50"))
RIVAL_LOW = float(os.environ.get("RIVAL_LOW", "0.7"))
_BASE_BAR = getattr(rl.fit_bar, "original", rl.fit_bar)
_STRONGEST = getattr(rl.strongest_fit, "original", rl.strongest_fit)
_SEEN: dict[str, float] = {"rival": UNKNOWN}  # the rival of the context whose bar is asked next


def strongest_fit(ctx: BidContext) -> float:
    """As the package's, and remembers the context's rival: every caller asks it just before ``fit_bar``."""
    _SEEN["rival"] = getattr(ctx.market, "rival", UNKNOWN)
    return _STRONGEST(ctx)


def fit_bar(profile: LearningProfile, reputation: int, strongest: float = 100.0) -> float:
    bar = _BASE_BAR(profile, reputation, strongest)
    if reputation >= OPEN_FROM and _SEEN["rival"] < RIVAL_LOW:
        return min(bar, OPEN_BAR)
    return bar


fit_bar.original = _BASE_BAR  # type: ignore[attr-defined]
strongest_fit.original = _STRONGEST  # type: ignore[attr-defined]


def rl_focal(seed: int, profile: str = "balanced") -> Any:
    for module in (rl, simulator):
        module.fit_bar = fit_bar  # type: ignore[attr-defined]
        module.strongest_fit = strongest_fit  # type: ignore[attr-defined]
    return _BASE(seed, profile)
