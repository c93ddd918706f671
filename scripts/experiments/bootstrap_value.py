"""Experiment (docs/learning-experiments.md, seventeenth session): the agent's own reputation valued by bootstrapping
the next decision's value instead of by the shaped ``reward.reputation_value``.

Why try it: the second session named it the next thing to try and nobody did. The learner is a contextual
bandit: every transition ends, and what a failure's ten points cost later is a hand-set logarithm. Here every
settled bid's transitions point at the state of the agent's *next* decided task, with the reputation feature
set to where each level would have left the agent (the real move for the levels that won as the bid did, none
for the levels that lose, the fit's expected move for a win imputed to a lost auction), and the model's
discount (``GAMMA``, default 0.9: about ten decisions) weighs that state's best value. ``MODE=money`` (default)
drops the agent's own reputation term from the hindsight rewards (money and the rival's climb stay), so its
reputation is worth only what the learned values say; ``MODE=both`` keeps the shaped term too (a double count,
for comparison).

Simulator only. Measure with ``scripts/learning_sweep.py --learner scripts/experiments/bootstrap_value.py``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import agentfleet.bidding.reward as reward
import trainer.simulator as simulator
from agentfleet.bidding.context import BidContext
from agentfleet.bidding.rl import fit_bar, strongest_fit
from agentfleet.bidding.state import ACTIONS, ANCHOR, REPUTATION, learned_fit, nearest_action, state_of
from agentfleet.profiles import AgentLearningConfig
from agentfleet.protocol.limits import FAILURE_PENALTY

GAMMA = float(os.environ.get("GAMMA", "0.9"))
MODE = os.environ.get("MODE", "money")
MODEL_SEED = int(os.environ.get("MODEL_SEED", "0"))  # another draw of the learner's own randomness (model_seed.py)
_EXPECTED_WIN = reward._expected_win


def _expected_move(fit: float) -> float:
    """The reputation a win at this fit moves on average (the score model of ``reward._expected_win``)."""
    passing = reward.pass_chance(fit)
    return passing * reward.pass_gain(fit) - (1 - passing) * FAILURE_PENALTY


def levels(s: reward.Settlement, anchor: float, taken: int) -> dict[int, tuple[float, float]]:
    """Per action it can tell: (reward, the agent's reputation after it)."""
    if MODE == "money":
        reward._expected_win = reward.expected_money  # the win without the agent's own reputation term
        try:
            rewards = reward.hindsight(replace(s, moved=0.0), anchor, taken)
        finally:
            reward._expected_win = _EXPECTED_WIN
    else:
        rewards = reward.hindsight(s, anchor, taken)
    before = s.reputation if s.reputation is not None else 50.0
    out = {}
    for action, value in rewards.items():
        move = 0.0
        if action:
            _, wins = reward.level_outcome(s, action, anchor, taken)
            if wins and s.won:
                move = s.moved
            elif wins and s.fit is not None:
                move = reward.capped_move(_expected_move(s.fit), before)
        out[action] = (value, max(0.0, min(100.0, before + move)))
    return out


def rl_focal(seed: int, profile: str = "balanced") -> Any:
    import torch

    from agentfleet.bidding.dqn import ReinforcementLearning, model_options
    from agentfleet.bidding.rl import RLBiddingStrategy

    torch.set_num_threads(1)
    learning = AgentLearningConfig.get_profile(profile)
    options = model_options(learning)
    options["discount_factor"] = GAMMA
    model = ReinforcementLearning("focal", seed=seed + 1_000_003 * MODEL_SEED, **options)
    strategy = RLBiddingStrategy("focal", learning, simulator._OneModel(model))
    pending: list[tuple[list[float], int, float, float]] = []  # state, action, reward, reputation after

    def decide(ctx: BidContext) -> simulator.Choice:
        decision = strategy.decide(ctx)
        if not decision.bid:
            return simulator.Choice(None, 0)
        fraction = decision.amount_fraction
        return simulator.Choice(fraction, nearest_action(fraction, state_of(ctx).anchor))

    def learn(ctx: BidContext, settled: simulator.Settled) -> None:
        if learned_fit(ctx) < fit_bar(learning, ctx.reputation, strongest_fit(ctx)):
            return
        state = state_of(ctx).vector()
        for before, action, value, after in pending:  # the previous decision's transitions, now with a successor
            successor = list(state)
            successor[REPUTATION] = after / 100
            model.remember(before, action, value, successor, False)
        pending.clear()
        for action, (value, after) in levels(
            simulator._settlement(ctx, settled), state[ANCHOR], settled.action
        ).items():
            if 0 <= action < ACTIONS:
                pending.append((state, action, value, after))
        for _ in range(simulator.TRAIN_STEPS):
            model.train_step()

    return decide, learn
