"""Experiment (not landed, docs/learning-experiments.md): the RL bidder's fit corrected by its own record on
the task's tag (its recent passes and failures of won tasks, newest 20 per tag; the raw fit's pass chance
counted as 5 tasks of prior; fit = 50 + 15 x probit(rate)); the gate, the warm-up heuristic, the state and
the hindsight all see the corrected fit. Measure with
``scripts/learning_sweep.py --learner scripts/experiments/calibrated_fit.py:rl_focal``; the CALFIT_* environment
variables below change its constants (a record that counts only when long and clearly off: CALFIT_MIN=10
CALFIT_PRIOR=20 CALFIT_DOWN_ONLY=1).
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict, deque
from pathlib import Path
from statistics import NormalDist
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import trainer.simulator as simulator
from agentfleet.bidding.context import BidContext
from agentfleet.bidding.reward import IMPUTED_SCORE_SD
from agentfleet.protocol.limits import PASS_SCORE

KEPT = int(os.environ.get("CALFIT_KEPT", "20"))  # outcomes kept per tag
PRIOR = int(os.environ.get("CALFIT_PRIOR", "5"))  # the raw fit's pass chance counted as this many tasks
MIN_RECORD = int(os.environ.get("CALFIT_MIN", "3"))  # outcomes before the record counts at all
DOWN_ONLY = os.environ.get("CALFIT_DOWN_ONLY") == "1"  # only ever lower the fit (a lying fit is too high)
_BASE = simulator.rl_focal  # the learner this one wraps (new_shapes.py replaces the module's)
NORMAL = NormalDist()


def calibrated(fit: float, outcomes: list[int]) -> float:
    """The fit whose pass chance is the record's rate (the fit's own counted as ``PRIOR`` tasks)."""
    if len(outcomes) < MIN_RECORD:
        return fit
    prior = NORMAL.cdf((fit - PASS_SCORE) / IMPUTED_SCORE_SD)
    rate = min(0.99, max(0.01, (sum(outcomes) + PRIOR * prior) / (len(outcomes) + PRIOR)))
    corrected = max(0.0, min(100.0, PASS_SCORE + IMPUTED_SCORE_SD * NORMAL.inv_cdf(rate)))
    return min(fit, corrected) if DOWN_ONLY else corrected


def rl_focal(seed: int, profile: str = "balanced") -> Any:
    decide, learn = _BASE(seed, profile)
    record: defaultdict[str, deque[int]] = defaultdict(lambda: deque(maxlen=KEPT))

    def corrected(ctx: BidContext) -> BidContext:
        fit = calibrated(ctx.fit_score, [o for tag in ctx.tags for o in record[tag]])
        return ctx.model_copy(update={"fit_score": fit})

    def decide_corrected(ctx: BidContext) -> simulator.Choice:
        return decide(corrected(ctx))

    def learn_corrected(ctx: BidContext, settled: simulator.Settled) -> None:
        seen = corrected(ctx)  # as it decided: before this outcome joins the record
        if settled.won and settled.score is not None:
            for tag in ctx.tags:
                record[tag].append(int(settled.score >= PASS_SCORE))
        learn(seen, settled)

    return decide_corrected, learn_corrected
