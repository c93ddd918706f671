"""Experiment (not landed, docs/learning-experiments.md): the agent's own reputation valued at
SCALE x ln(r + 1) instead of 0.02 a point, SCALE such that a failure at the cap costs what it does today
(a point is worth SCALE / (r + 1): the auction divides by reputation + 1); ``rival_log`` values a rival's
gain the same way at the rival's reputation. Measure with
``scripts/learning_sweep.py --learner scripts/experiments/log_reputation.py:rl_focal`` (or ``:rl_focal_rivals``).

It swaps the simulator's ``hindsight`` for its own; the package is untouched.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import trainer.simulator as simulator
from agentfleet.bidding import reward as R
from agentfleet.protocol.limits import FAILURE_PENALTY, PASS_SCORE, REPUTATION_STEP

FLAT_LOSS = False  # set by rl_focal_rivals_flat_loss
MAX_LOSS = False  # set by rl_focal_rivals_max_loss
_BASE = simulator.rl_focal  # the learner this one wraps (new_shapes.py replaces the module's)
SCALE = (
    R.REPUTATION_WEIGHT * FAILURE_PENALTY / math.log((R.MAX_REPUTATION + 1) / (R.MAX_REPUTATION + 1 - FAILURE_PENALTY))
)


def value(moved: float, reputation: float | None) -> float:
    """A move of ``moved`` points from ``reputation``, in units of the task's reward (flat when unknown)."""
    if reputation is None:
        return R.REPUTATION_WEIGHT * moved
    after = max(0.0, min(R.MAX_REPUTATION, reputation + moved))
    return SCALE * math.log((after + 1) / (reputation + 1))


def _handed(s: R.Settlement, rival_log: bool, floor: float | None = None) -> float:
    if not s.rivals:
        return 0.0
    gain = R.rival_gain(s)
    if floor is not None:  # a reckless rival's loss counted as at most ``floor`` points (one failure: 10)
        gain = max(-floor, gain)
    if FLAT_LOSS and gain < 0:  # variant: a rival's loss valued flat, as before the log
        return R.REPUTATION_WEIGHT * gain
    if MAX_LOSS and gain < 0 and s.rival_reputation is not None:  # variant: the larger of the two values
        return min(value(max(-float(FAILURE_PENALTY), gain), float(s.rival_reputation)), R.REPUTATION_WEIGHT * gain)
    if rival_log and s.rival_reputation is not None:
        return value(gain, float(s.rival_reputation))
    return R.REPUTATION_WEIGHT * gain


def _expected_win(s: R.Settlement, fraction: float, fit: float) -> float:
    z = (fit - PASS_SCORE) / R.IMPUTED_SCORE_SD
    passing = 0.5 * math.erfc(-z / math.sqrt(2))
    density = math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    above = fit + R.IMPUTED_SCORE_SD * density / max(passing, 1e-9) - PASS_SCORE
    gain = max(0.0, above / REPUTATION_STEP - 0.5)
    moved = passing * value(gain, s.reputation) + (1 - passing) * value(-FAILURE_PENALTY, s.reputation)
    money = passing * fraction * s.reward_eth - s.win_cost_eth - s.bid_cost_eth - s.evaluation_cost_eth
    return money / max(s.reward_eth, 1e-18) + moved


def hindsight(
    s: R.Settlement, anchor: float, taken: int, *, rival_log: bool = False, floor: float | None = None
) -> dict[int, float]:
    """``reward.hindsight`` with the reputation valued by ``value``."""
    per = max(s.reward_eth, 1e-18)
    handed = _handed(s, rival_log, floor)
    lost = (-s.bid_cost_eth - s.evaluation_cost_eth) / per - handed
    out = {0: -s.evaluation_cost_eth / per - handed}
    for action in range(1, R.ACTIONS):
        fraction = R.action_fraction(action, anchor) or 0.0
        if action == taken and s.bid_fraction is not None:
            fraction = s.bid_fraction
        if action == taken:
            wins = s.won
        elif s.price_to_beat is None:
            continue
        else:
            wins = fraction < s.price_to_beat
        if not wins:
            out[action] = lost
        elif s.won:
            earned = fraction * s.reward_eth if s.passed else 0.0
            money = earned - s.win_cost_eth - s.bid_cost_eth - s.evaluation_cost_eth
            out[action] = money / per + value(s.moved, s.reputation)
        elif s.fit is not None:
            out[action] = _expected_win(s, fraction, s.fit)
    return out


def rl_focal(seed: int, profile: str = "balanced") -> Any:
    simulator.hindsight = hindsight  # type: ignore[assignment]
    return _BASE(seed, profile)


def rl_focal_rivals(seed: int, profile: str = "balanced") -> Any:
    simulator.hindsight = lambda s, anchor, taken: hindsight(s, anchor, taken, rival_log=True)  # type: ignore[assignment]
    return _BASE(seed, profile)


def rl_focal_rivals_bounded(seed: int, profile: str = "balanced") -> Any:
    """As ``rl_focal_rivals``, a reckless rival's loss valued as at most one failure (10 points)."""
    simulator.hindsight = lambda s, anchor, taken: hindsight(  # type: ignore[assignment]
        s, anchor, taken, rival_log=True, floor=float(FAILURE_PENALTY)
    )
    return _BASE(seed, profile)


def rl_focal_rivals_flat_loss(seed: int, profile: str = "balanced") -> Any:
    """As ``rl_focal_rivals``, a reckless rival's loss valued flat (0.02 a point, at most 30 points)."""
    global FLAT_LOSS
    FLAT_LOSS = True
    simulator.hindsight = lambda s, anchor, taken: hindsight(s, anchor, taken, rival_log=True)  # type: ignore[assignment]
    return _BASE(seed, profile)


def rl_focal_rivals_floor(seed: int, profile: str = "balanced") -> Any:
    """As ``rl_focal_rivals_bounded`` with the floor (points) from the FLOOR environment variable."""
    import os

    floor = float(os.environ.get("FLOOR", FAILURE_PENALTY))
    simulator.hindsight = lambda s, anchor, taken: hindsight(  # type: ignore[assignment]
        s, anchor, taken, rival_log=True, floor=floor
    )
    return _BASE(seed, profile)


def rl_focal_rivals_max_loss(seed: int, profile: str = "balanced") -> Any:
    """As ``rl_focal_rivals_bounded``, a reckless rival's loss worth the larger of that value and the flat one
    (0.02 a point, up to 30 points): the flat one is larger where the rival is high."""
    global MAX_LOSS
    MAX_LOSS = True
    simulator.hindsight = lambda s, anchor, taken: hindsight(s, anchor, taken, rival_log=True)  # type: ignore[assignment]
    return _BASE(seed, profile)
