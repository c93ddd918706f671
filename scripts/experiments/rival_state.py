"""Experiment (docs/learning-experiments.md, fifteenth session): the state gains a 13th feature, the lowest
reputation (now) among the rivals whose prices the agent had to beat in the tag's recent auctions.

Why try it: what losing a task costs (``reward.handed_value``, the reputation the rival climbs with it) depends on
who that rival is, and nothing in the state says it: at an anchor of 0.8 the learner cannot tell a rival at 40
(every task it hands over lifts it toward 100 and cheapens the agent's own tags) from one at 100 (nothing more to
lose). Traced in sparse 11: the balanced rival climbed from 53 to 100 on creative-writing tasks (fit 28) the
learner bid on at 1.0-1.07 x the anchor and lost, the same levels it rightly bids on tasks it passes. With the
rival's reputation the model can learn that a bid it places to keep a low rival down must win.

Simulator only: it patches ``market.features_of`` (the MarketBook's), ``state.state_of`` and the network's
input size in each process. Measure with ``scripts/learning_sweep.py --learner scripts/experiments/rival_state.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import agentfleet.bidding.dqn as dqn
import agentfleet.bidding.market as market
import agentfleet.bidding.rl as rl
import agentfleet.bidding.state as state
import trainer.simulator as simulator
from agentfleet.bidding.context import BidContext

UNKNOWN = 1.0  # no rival seen yet: read as a rival at the cap (nothing to hold down)
# the package's own functions, even when this file is loaded again in a process it already patched
_FEATURES = getattr(market.features_of, "original", market.features_of)
_STATE = getattr(state.state_of, "original", state.state_of)
_BASE = simulator.rl_focal


class RivalFeatures(market.MarketFeatures):
    rival: float = UNKNOWN  # the lowest reputation (/ 100) of the recent price setters, now


def features_of(
    entries: Iterable[market.Clearing],
    agent: str,
    reputations: Mapping[str, int] | None = None,
    scores: Iterable[float] = (),
) -> market.MarketFeatures:
    seen = list(entries)[: market.KEPT]
    base = _FEATURES(seen, agent, reputations, scores)
    me, now, lowest = agent.lower(), reputations or {}, None
    for c in seen:
        who, then = (
            (c.runner_up_agent, c.runner_up_reputation) if c.winner.lower() == me else (c.winner, c.winner_reputation)
        )
        if not who:
            continue
        current = now.get(who.lower(), then)
        if current is not None and current >= 0:
            lowest = current if lowest is None else min(lowest, current)
    return RivalFeatures(**base.model_dump(), rival=UNKNOWN if lowest is None else lowest / 100)


class RivalState:
    """A ``BidState`` with the rival's reputation appended to its vector."""

    def __init__(self, base: state.BidState, rival: float) -> None:
        self.base, self.rival = base, rival

    def __getattr__(self, name: str) -> Any:
        return getattr(self.base, name)

    def vector(self) -> list[float]:
        return [*self.base.vector(), min(1.0, max(0.0, self.rival))]


def state_of(ctx: BidContext) -> Any:
    return RivalState(_STATE(ctx), getattr(ctx.market, "rival", UNKNOWN))


features_of.original = _FEATURES  # type: ignore[attr-defined]
state_of.original = _STATE  # type: ignore[attr-defined]


def rl_focal(seed: int, profile: str = "balanced") -> Any:
    market.features_of = features_of  # type: ignore[assignment]
    for module in (state, rl, simulator):
        module.state_of = state_of  # type: ignore[attr-defined]
    state.STATE_SIZE = dqn.STATE_SIZE = 13  # type: ignore[misc]
    return _BASE(seed, profile)
