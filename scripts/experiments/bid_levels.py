"""Experiment (docs/learning-experiments.md, sixth session): the learner with other bid levels, the same
number of them (17 actions). ``BID_LEVELS`` in the environment, comma-separated multiples of the price to
beat; the default is the tried and not landed 0.998 in place of 0.86. Measure with
``BID_LEVELS=... .venv/bin/python scripts/learning_sweep.py --learner scripts/experiments/bid_levels.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import agentfleet.bidding.state as state
import trainer.simulator as simulator

TRIED = "0.4,0.55,0.7,0.8,0.9,0.95,0.97,0.985,0.995,0.998,1.0,1.03,1.07,1.15,1.3,1.5"
LEVELS = tuple(float(x) for x in os.environ.get("BID_LEVELS", TRIED).split(","))
if len(LEVELS) != len(state.BID_LEVELS):
    raise SystemExit(f"BID_LEVELS needs {len(state.BID_LEVELS)} levels (the model's actions), got {len(LEVELS)}")
state.BID_LEVELS = LEVELS  # read at call time by action_fraction and nearest_action
rl_focal = simulator.rl_focal
