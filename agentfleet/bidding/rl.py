"""RLBiddingStrategy: the trained DQN behind the ``BiddingStrategy`` protocol, and the workers' model cache.

Why a cache keyed by the file's (mtime, size): a worker checks for a new model version before every bid
with one ``stat`` call (microseconds) and reloads only when the trainer wrote a new file. A model that
fails to load keeps the last good one in memory (or a fresh one), and says so in the log.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Protocol

from agentfleet import policy
from agentfleet.bidding.context import BidContext, BidDecision, abstain
from agentfleet.bidding.dqn import ModelLoadError, ReinforcementLearning, model_path
from agentfleet.bidding.state import action_fraction, exploration_rate, state_of
from agentfleet.profiles import LearningProfile

log = logging.getLogger(__name__)


class ModelCache:
    def __init__(self, models_dir: Path) -> None:
        self.models_dir = Path(models_dir)
        self._models: dict[str, tuple[tuple[int, int], ReinforcementLearning]] = {}

    def get(self, agent: str) -> ReinforcementLearning:
        path = model_path(self.models_dir, agent)
        try:
            stat = os.stat(path)
            stamp = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = (0, 0)
        cached = self._models.get(agent)
        if cached and cached[0] == stamp:
            return cached[1]
        model = cached[1] if cached else ReinforcementLearning(agent)
        if stamp != (0, 0):
            fresh = ReinforcementLearning(agent)
            try:
                fresh.load(self.models_dir)
                model = fresh
            except (ModelLoadError, FileNotFoundError) as exc:
                log.error("keeping model version %s for %s: %s", model.version, agent, exc)
        self._models[agent] = (stamp, model)
        return model


class ModelSource(Protocol):
    def get(self, agent: str) -> ReinforcementLearning: ...


class RLBiddingStrategy:
    """Workers pass a ``ModelCache`` (the trainer's files); the simulator its one model in memory."""

    def __init__(self, agent: str, profile: LearningProfile, cache: ModelSource) -> None:
        self.agent = agent
        self.profile = profile
        self.cache = cache

    def decide(self, ctx: BidContext) -> BidDecision:
        model = self.cache.get(self.agent)
        decisions = model.memory.size + 1  # this one included: each earlier decision left one transition
        model.exploration_rate = exploration_rate(self.profile.exploration_rate, decisions)
        if ctx.fit_score < self.profile.min_fit_to_bid:  # risk follows the profile: no bets on tasks it cannot do
            bar = self.profile.min_fit_to_bid
            reason = f"RL v{model.version}: fit {ctx.fit_score:.0f} below the profile's bar {bar:.0f}"
            return abstain(reason)
        state = state_of(ctx)
        action = model.act(state.vector())
        fraction = action_fraction(action)
        if fraction is None:
            return abstain(f"RL v{model.version}: abstain")
        fraction = policy.clamp_fraction(fraction)
        return BidDecision(
            bid=True,
            amount_fraction=fraction,
            amount_wei=policy.bid_amount(ctx.reward_wei, fraction),
            reason=f"RL v{model.version}: action {action}",
        )
