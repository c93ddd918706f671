"""Experiment (docs/learning-experiments.md, thirteenth session): a failure that takes the learner under the
open bar (``rl.OPEN_BAR_FROM``) also costs it the next weak-tag task it can no longer bid on, valued as the
task it hands the best rival (``reward.handed_value``).

Why try it: at reputation 100 the hindsight values a failure at 0.2 of a reward and leaving a low rival a task at
about 1 (30 points at 40), so the learner blocks that rival with tasks it fails 95 % of the time; the second
failure takes it under 90, where the bar closes the tag and the rival climbs anyway (sparse 11, specialist 16:
the cliff traced in the twelfth session). Counted here: from 90 to 99 a failure (actual, or the imputed
failures of levels that would have won) also hands over the next task, so the learner blocks at 100 and leaves
the weak tag at 90-99 unless it is likely to pass. Measure with ``scripts/learning_sweep.py --learner
scripts/experiments/cliff_value.py``; CLIFF_SHARE in the environment scales the cost (1: one handed task).

It swaps the simulator's ``hindsight`` in each process; the package is untouched.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import trainer.simulator as simulator
from agentfleet.bidding import reward as R
from agentfleet.bidding.rl import OPEN_BAR_FROM
from agentfleet.bidding.state import ACTIONS
from agentfleet.protocol.limits import FAILURE_PENALTY

SHARE = float(os.environ.get("CLIFF_SHARE", "1"))
_BASE = R.hindsight


def _failing(s: R.Settlement) -> float:
    """The chance a win of this task fails: 1 or 0 when it was won, else from the fit (``reward.pass_chance``)."""
    if s.won:
        return 0.0 if s.passed else 1.0
    return 0.0 if s.fit is None else 1.0 - R.pass_chance(s.fit)


def hindsight(settlement: R.Settlement, anchor: float, taken: int) -> dict[int, float]:
    out = _BASE(settlement, anchor, taken)
    s = settlement
    if not s.rivals or s.reputation is None or not OPEN_BAR_FROM <= s.reputation < OPEN_BAR_FROM + FAILURE_PENALTY:
        return out
    cliff = SHARE * _failing(s) * R.handed_value(s)
    if cliff <= 0:
        return out
    for action in range(1, ACTIONS):
        if action in out and R.level_outcome(s, action, anchor, taken)[1]:
            out[action] -= cliff
    return out


simulator.hindsight = hindsight  # type: ignore[assignment]
rl_focal = simulator.rl_focal
