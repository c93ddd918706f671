"""Experiment (docs/learning-experiments.md, seventh session): in a market whose capability weights follow the
scores (the chain's rule), a rival that fails a tag stops bidding on it after a few failures, so handing it
such a task sinks it only briefly; this learner never counts a handed task as a gain (``handed_gain`` floored
at 0 instead of at minus one failure). Measure with
``scripts/learning_sweep.py --learner scripts/experiments/no_reckless_gain.py:rl_focal``.

It swaps the reward module's ``handed_gain`` (which ``hindsight`` calls) in each process; the package is
untouched.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import trainer.simulator as simulator
from agentfleet.bidding import reward as R

FLOOR = float(os.environ.get("HANDED_FLOOR", "0"))  # points: the least a handed task costs (landed: -10)


def handed_gain(s: R.Settlement) -> float:
    return max(FLOOR, R.rival_gain(s))


R.handed_gain = handed_gain
rl_focal = simulator.rl_focal
