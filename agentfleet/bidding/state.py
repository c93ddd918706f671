"""The RL state and action space, free of torch so workers can record what they saw without importing it."""

from __future__ import annotations

import math
from dataclasses import dataclass

from agentfleet.bidding.context import BidContext

# Fine steps where winning auctions are priced (measured in the simulator: 0.1 steps left money on the
# table against fixed strategies), coarse ones at the bottom to win back reputation.
BID_LEVELS: tuple[float, ...] = (
    0.1,
    0.2,
    0.3,
    0.35,
    0.4,
    0.45,
    0.5,
    0.55,
    0.6,
    0.65,
    0.7,
    0.75,
    0.8,
    0.85,
    0.9,
    0.95,
    1.0,
)
ACTIONS = 1 + len(BID_LEVELS)  # 0 = abstain
STATE_SIZE = 8


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
    competition: float  # bids seen on similar tasks

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
        ]


def action_fraction(action: int) -> float | None:
    """None for abstain, else the bid as a fraction of the reward."""
    if not 0 <= action < ACTIONS:
        raise ValueError(f"action {action} outside 0..{ACTIONS - 1}")
    return None if action == 0 else BID_LEVELS[action - 1]


def state_of(ctx: BidContext) -> BidState:
    """The one way a bid context becomes an RL state: the worker that decides and the record the trainer
    learns from must see the same numbers."""
    relevant = [ctx.capability_weights[t] for t in ctx.tags if t in ctx.capability_weights]
    return BidState(
        fit=ctx.fit_score,
        capability=sum(relevant) / len(relevant) if relevant else 0.0,
        reputation=float(ctx.reputation),
        workload=float(ctx.workload),
        reward_eth=ctx.reward_wei / 1e18,
        deadline_s=float(ctx.seconds_to_deadline),
        win_rate=ctx.recent_win_rate,
        competition=float(ctx.competing_bids),
    )


EXPLORATION_SPAN = 1200  # transitions over which exploration decays from its start to its floor


def exploration_rate(profile_rate: float, experience: int) -> float:
    """Epsilon for a model that has learned from ``experience`` transitions: a linear decay (cleanrl's
    schedule) from three times the learning profile's rate to a fifth of it, so a profile that explores
    more keeps exploring more, and a fresh model explores most."""
    start, floor = min(1.0, 3 * profile_rate), profile_rate / 5
    return max(floor, start * (1 - experience / EXPLORATION_SPAN))


def nearest_action(fraction: float) -> int:
    """The DQN action whose bid level is closest to ``fraction`` (for bids another strategy chose)."""
    return 1 + min(range(len(BID_LEVELS)), key=lambda i: abs(BID_LEVELS[i] - fraction))
