"""The RL state and action space, free of torch so workers can record what they saw without importing it."""

from __future__ import annotations

import math
from dataclasses import dataclass

BID_LEVELS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
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
