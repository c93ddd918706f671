"""Experiment (docs/learning-experiments.md, eleventh session): the RL bidder's fit raised to the mean of its own
recent scores on the task's tag when that mean is higher (``SCORES_KEPT`` newest per tag, from ``SCORES_MIN``).

Why try it: the chain's capability weight moves a quarter of the way toward each score of a won task, an average of
about the last four scores. A weight that is too high corrects itself (the agent keeps bidding and the next scores
pull it down); one that is too low freezes, since the agent stops bidding and no score comes to raise it. Weak 42:
data analysis (skill 0.45, passes 34 %, paid the whole reward at reputation 100) fell to a weight of 35 after a few
low scores at task 1900, the hindsight then valued its tasks at a pass chance of 16 % and the learner left 100
tasks a window it would have earned about 0.3 ETH each on. Measure with ``scripts/learning_sweep.py --learner
scripts/experiments/score_record.py``; SCORES_KEPT, SCORES_MIN and SCORES_BOTH (1: also lower) change it.

Landed as ``state.learned_fit`` (eleventh session); this file is the experiment as measured, against the code
before it (commit 0001460: run it in a checkout of that commit, ``git worktree add /tmp/before 0001460``).
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import trainer.simulator as simulator
from agentfleet.bidding.context import BidContext

KEPT = int(os.environ.get("SCORES_KEPT", "20"))
MIN_SCORES = int(os.environ.get("SCORES_MIN", "5"))
BOTH = os.environ.get("SCORES_BOTH") == "1"
_BASE = simulator.rl_focal


def rl_focal(seed: int, profile: str = "balanced") -> Any:
    decide, learn = _BASE(seed, profile)
    record: defaultdict[str, deque[float]] = defaultdict(lambda: deque(maxlen=KEPT))

    def corrected(ctx: BidContext) -> BidContext:
        scores = [s for tag in ctx.tags for s in record[tag]]
        if len(scores) < MIN_SCORES:
            return ctx
        mean = sum(scores) / len(scores)
        fit = mean if BOTH else max(ctx.fit_score, mean)
        return ctx.model_copy(update={"fit_score": fit})

    def decide_corrected(ctx: BidContext) -> simulator.Choice:
        return decide(corrected(ctx))

    def learn_corrected(ctx: BidContext, settled: simulator.Settled) -> None:
        seen = corrected(ctx)
        if settled.won and settled.score is not None:
            for tag in ctx.tags:
                record[tag].append(settled.score)
        learn(seen, settled)

    return decide_corrected, learn_corrected
