"""Experiment (docs/learning-experiments.md, fifteenth session): a bid on a task the agent will likely fail is
placed under the price to beat (at most ``SHADE`` x the anchor), so that it wins.

Why try it (a hypothesis test, not a learner): such a bid is worth placing only to keep a rival from winning
the task (``reward.handed_value``); its price hardly matters (it is paid with the pass chance only), but losing
it hands the rival the task. Traced in sparse 11: the balanced rival climbed from 53 to 100 on creative-writing
tasks (fit 28) the learner bid on at 1.0-1.07 x the anchor and lost. If holding such bids under the anchor keeps
the rival down, the model is missing what losing costs (the rival's reputation is not in its state). Measure
with ``scripts/learning_sweep.py --learner scripts/experiments/sure_block.py``; SHADE and PASS_MAX (the pass
chance under which a bid counts as a block) in the environment change the constants; with OPEN_BAR set, open_bar.py's
bar applies too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import trainer.simulator as simulator
from agentfleet.bidding.context import BidContext
from agentfleet.bidding.reward import pass_chance
from agentfleet.bidding.state import learned_fit, nearest_action, state_of

SHADE = float(os.environ.get("SHADE", "0.95"))
PASS_MAX = float(os.environ.get("PASS_MAX", "0.25"))
_BASE = simulator.rl_focal
if os.environ.get("OPEN_BAR"):  # with open_bar.py's bar (OPEN_BAR, OPEN_FROM) as well
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from open_bar import rl_focal as _BASE  # type: ignore[no-redef]


def rl_focal(seed: int, profile: str = "balanced") -> Any:
    decide, learn = _BASE(seed, profile)

    def decide_blocking(ctx: BidContext) -> simulator.Choice:
        choice = decide(ctx)
        if choice.fraction is None or pass_chance(learned_fit(ctx)) >= PASS_MAX:
            return choice
        anchor = state_of(ctx).anchor
        fraction = min(choice.fraction, max(0.05, SHADE * anchor))
        return simulator.Choice(fraction, nearest_action(fraction, anchor))

    return decide_blocking, learn
