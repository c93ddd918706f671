"""Experiment (docs/learning-experiments.md, eleventh session): a rival's reputation move valued only as far as it
moves the price the agent can ask, which never goes over the reward.

Why try it: ``reward.hindsight`` values the points a rival moves with a task handed to it at the rival's
reputation (``REPUTATION_SCALE x ln((r' + 1) / (r + 1))``), wherever the rival stands. A reckless rival at 3 that
fails a handed task (3 -> 0) then counts as a gain of 2.7 task rewards, though its bids, divided by 4, were never
near what the agent had to beat. Weak 4: the explorer at 1-5 took every data-analysis task the learner left,
Q(abstain) read +0.1 to +3.7 and the learner stopped bidding on a tag it passes a third of the time at the whole
reward. Valued as the change of ``min(1, price to beat)`` (the same logarithm), a move far from the price the
agent asks is worth nothing. ``RIVAL_CAP=loss`` (default) caps only a rival's losses, ``both`` its gains too.
Measure with ``scripts/learning_sweep.py --learner scripts/experiments/rival_cap.py``; ``SCORES=1`` adds
``score_record.py``.

Landed as ``reward.handed_value`` (eleventh session); this file is the experiment as measured, against the code
before it (commit 0001460: run it in a checkout of that commit, ``git worktree add /tmp/before 0001460``).
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import agentfleet.bidding.reward as reward
import trainer.simulator as simulator

MODE = os.environ.get("RIVAL_CAP", "loss")
_BASE_GAIN = reward.handed_gain


def handed_value(s: reward.Settlement) -> float:
    gain = _BASE_GAIN(s)
    full = reward.reputation_value(gain, s.rival_reputation)
    if s.price_to_beat is None or s.rival_reputation is None or (gain >= 0 and MODE != "both"):
        return full
    before = max(0.0, min(reward.MAX_REPUTATION, s.rival_reputation))
    after = before + reward.capped_move(gain, before)
    price = max(s.price_to_beat, 1e-9)
    moved = price * (before + 1) / (after + 1)
    return reward.REPUTATION_SCALE * math.log(min(1.0, price) / min(1.0, moved))


def hindsight(settlement: reward.Settlement, anchor: float, taken: int) -> dict[int, float]:
    s = settlement
    out = _BASE_HINDSIGHT(settlement, anchor, taken)
    if not s.rivals:
        return out
    old = reward.reputation_value(_BASE_GAIN(s), s.rival_reputation)
    new = handed_value(s)
    lost_old = reward.money_reward(-s.bid_cost_eth - s.evaluation_cost_eth, 0, s.reward_eth) - old
    keep_out = {}
    for action, value in out.items():
        if action == 0:
            keep_out[0] = value + old - new
        elif not (action == taken and s.won) and abs(value - lost_old) < 1e-12 and _loses(s, anchor, action, taken):
            keep_out[action] = value + old - new
        else:
            keep_out[action] = value
    return keep_out


def _loses(s: reward.Settlement, anchor: float, action: int, taken: int) -> bool:
    if action == taken:
        return not s.won
    if s.price_to_beat is None:
        return False
    fraction = reward.action_fraction(action, anchor) or 0.0
    return not fraction < s.price_to_beat


_BASE_HINDSIGHT = reward.hindsight
if os.environ.get("SCORES") == "1":
    import score_record

    _BASE = score_record.rl_focal
else:
    _BASE = simulator.rl_focal


def rl_focal(seed: int, profile: str = "balanced") -> Any:
    simulator.hindsight = hindsight  # type: ignore[attr-defined]
    return _BASE(seed, profile)
