"""The RL state and action space, free of torch so workers can record what they saw without importing it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from agentfleet.bidding.context import BidContext

# Bid levels as multiples of the market's price to beat (the anchor, :mod:`agentfleet.bidding.market`): fine
# steps just under it, where a first-price auction is won at the best price, coarse ones below to win back
# reputation and above to probe a market that moved. With no market seen yet the anchor is DEFAULT_ANCHOR.
# Why 0.995 (it replaced 0.93 in format 4): once a rival settles its heuristic bid depends only on its
# reputation, so the price to beat is the anchor in most auctions and the best bid is just under it; with
# 0.985 the finest step the learner left 1.5 % of every such price (docs/learning-experiments.md, sixth
# session: +0.7 % in the last 500 tasks over 243 runs, 172 up and 33 down).
BID_LEVELS: tuple[float, ...] = (
    0.4,
    0.55,
    0.7,
    0.8,
    0.86,
    0.9,
    0.95,
    0.97,
    0.985,
    0.995,
    1.0,
    1.03,
    1.07,
    1.15,
    1.3,
    1.5,
)
ACTIONS = 1 + len(BID_LEVELS)  # 0 = abstain
STATE_SIZE = 12
FIT = 0  # index of the fit (/ 100) in the state vector
REPUTATION = 2  # index of the reputation (/ 100) in the state vector
ANCHOR = 8  # index of the anchor in the state vector
DEFAULT_ANCHOR = 0.7  # of the reward, while an agent has seen no clearing price of the task's tags
# The anchor goes up to twice the reward, though no bid goes over the reward (the levels' fractions are capped at
# 1: with the anchor at 2, the lowest level bids 0.8 and every level from 0.55 bids the whole reward). Why: a price to
# beat of 1.4 x the reward (rivals far behind) and one of 0.98 both made "bid the whole reward" the best bid,
# but only the first survives a small drop of the agent's own reputation. Capped at 1.0 the two states looked
# alike, and a learner used to the first kept bidding the whole reward after a few failures, lost ten tasks in a
# row to a rival at 50 and raised it to 100 for good (README "Learning": 2 of 10 generalist runs; uncapped, none).
ANCHOR_CEILING = 2.0
SURE_MARKET = 5  # clearing prices seen before the market features count fully
MIN_SCORES = 5  # the agent's own scores on a task's tags before their mean can raise its fit (``learned_fit``)


@dataclass(frozen=True)
class BidState:
    """What the agent saw at bid time; every field is clipped into a bounded range by ``vector``."""

    fit: float  # 0..100
    capability: float  # 0..100, mean weight of the task's tags
    reputation: float  # 0..100
    workload: float  # running tasks
    reward_eth: float
    deadline_s: float
    win_rate: float  # 0..1, recent
    competition: float  # bids already placed on this task
    anchor: float = DEFAULT_ANCHOR  # the price to beat, of the reward (above 1 when rivals are far behind)
    spread: float = 0.0  # how far recent prices to beat spread (interquartile), of the reward
    known: float = 0.0  # clearing prices seen by the agent / SURE_MARKET
    bidders: float = 0.0  # mean bids per recent auction of the tags

    def vector(self) -> list[float]:
        def clip(value: float, low: float = 0.0, high: float = 1.0) -> float:
            if math.isnan(value):
                return low
            return min(high, max(low, value))

        return [
            clip(self.fit / 100),
            clip(self.capability / 100),
            clip(self.reputation / 100),
            clip(self.workload / 5),
            clip(math.log10(1 + max(0.0, self.reward_eth)) / 3),
            clip(self.deadline_s / 3600),
            clip(self.win_rate),
            clip(self.competition / 10),
            clip(self.anchor, 0.0, ANCHOR_CEILING),
            clip(self.spread),
            clip(self.known),
            clip(self.bidders / 10),
        ]


def action_fraction(action: int, anchor: float = DEFAULT_ANCHOR) -> float | None:
    """None for abstain, else the bid as a fraction of the reward: the action's multiple of ``anchor`` (the
    state's price to beat), not above the reward."""
    if not 0 <= action < ACTIONS:
        raise ValueError(f"action {action} outside 0..{ACTIONS - 1}")
    return None if action == 0 else min(1.0, BID_LEVELS[action - 1] * anchor)


def state_of(ctx: BidContext) -> BidState:
    """The one way a bid context becomes an RL state: the worker that decides and the record the trainer
    learns from (and the simulator) see the same numbers."""
    relevant = [ctx.capability_weights[t] for t in ctx.tags if t in ctx.capability_weights]
    anchor, spread, known, bidders = _market(ctx)
    return BidState(
        fit=learned_fit(ctx),
        capability=sum(relevant) / len(relevant) if relevant else 0.0,
        reputation=float(ctx.reputation),
        workload=float(ctx.workload),
        reward_eth=ctx.reward_wei / 1e18,
        deadline_s=float(ctx.seconds_to_deadline),
        win_rate=ctx.recent_win_rate,
        competition=float(ctx.competing_bids),
        anchor=anchor,
        spread=spread,
        known=known,
        bidders=bidders,
    )


def learned_fit(ctx: BidContext) -> float:
    """The fit the learner decides with: the context's fit (the LLM's, from the agent's capability weights),
    raised to the mean of the agent's own recent scores on the task's tags when that is higher and there are at
    least ``MIN_SCORES`` of them (``MarketFeatures.scores``, kept by the trainer).

    Why raised, never lowered: the chain moves a capability weight a quarter of the way toward each score of a
    won task, an average of about the last four scores. A weight that drifted too high corrects itself (the
    agent keeps bidding and the next scores pull it down); one that drifted too low freezes there, since the
    agent stops bidding on the tag and no score comes to raise it. Simulated (weak 42, docs/learning-experiments.md):
    data analysis, passed a third of the time at the whole reward, fell to a weight of 35 after a few low scores,
    the learner valued its tasks at a pass chance of 16 % and left a fifth of the market it could earn on;
    its last 500 tasks earned less than its first. The last 20 scores average out that luck. Lowering the fit
    by the record was measured before (fourth session) and cost more than it saved."""
    scores = ctx.market.scores if ctx.market is not None else []
    if len(scores) < MIN_SCORES:
        return ctx.fit_score
    return max(ctx.fit_score, min(100.0, sum(scores) / len(scores)))


def _market(ctx: BidContext) -> tuple[float, float, float, float]:
    """(anchor, spread, known, bidders): the others' recent weighted clearing prices turned into the fraction
    this agent, at its reputation, must stay under to win (their median), and their interquartile spread."""
    market = ctx.market
    if market is None or not market.clearing:
        return DEFAULT_ANCHOR, 0.0, 0.0, market.bidders if market is not None else 0.0
    prices = sorted(market.clearing)
    scale = ctx.reputation + 1

    def quantile(q: float) -> float:
        return prices[min(len(prices) - 1, int(q * len(prices)))]

    anchor = min(ANCHOR_CEILING, quantile(0.5) * scale)  # above the reward: how safe a bid of all of it is
    spread = (quantile(0.75) - quantile(0.25)) * scale
    return anchor, spread, min(1.0, len(prices) / SURE_MARKET), market.bidders


EXPLORATION_BONUS = 0.2  # the UCB bonus at the profile's exploration rate 1.0, in units of the reward


def exploration_bonus(profile_rate: float) -> float:
    """The weight of the UCB bonus: a profile that explores more keeps trying other bid levels longer."""
    return EXPLORATION_BONUS * profile_rate


def ucb_scores(q_values: Sequence[float], counts: Sequence[float], bonus: float) -> list[float]:
    """Q plus an upper-confidence bonus per action: ``bonus x sqrt(ln(1 + N) / (1 + n_a))`` with ``n_a`` the
    transitions the model learned from that action (N in all). Untried bid levels get tried, then the bonus
    fades as evidence grows: exploration follows uncertainty, not a clock."""
    total = math.log1p(sum(counts))
    return [q + bonus * math.sqrt(total / (1 + n)) for q, n in zip(q_values, counts, strict=True)]


def nearest_action(fraction: float, anchor: float = DEFAULT_ANCHOR) -> int:
    """The bid action whose level (times ``anchor``) is closest to ``fraction`` (for bids another strategy chose)."""
    levels = [min(1.0, level * anchor) for level in BID_LEVELS]
    return 1 + min(range(len(levels)), key=lambda i: abs(levels[i] - fraction))
