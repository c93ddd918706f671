"""RLBiddingStrategy: the trained DQN behind the workers' ``BiddingStrategy`` protocol.

Why a cache keyed by the file's (mtime, size): a worker checks for a new model version before every bid
with one ``stat`` call (microseconds) and reloads only when the trainer wrote a new file. A model that
fails to load keeps the last good one in memory (or a fresh one), and says so in the log.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from agentfleet import policy
from agentfleet.profiles import LearningProfile
from agentfleet.strategy import BidContext, BidDecision
from trainer.rl import ModelLoadError, ReinforcementLearning
from trainer.state import BidState, action_fraction

log = logging.getLogger(__name__)


class ModelCache:
    def __init__(self, models_dir: Path) -> None:
        self.models_dir = Path(models_dir)
        self._models: dict[str, tuple[tuple[int, int], ReinforcementLearning]] = {}

    def get(self, agent: str) -> ReinforcementLearning:
        path = self.models_dir / f"{agent}_rl_model.pt"
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


class RLBiddingStrategy:
    def __init__(self, agent: str, profile: LearningProfile, cache: ModelCache) -> None:
        self.agent = agent
        self.profile = profile
        self.cache = cache

    def decide(self, ctx: BidContext) -> BidDecision:
        model = self.cache.get(self.agent)
        model.exploration_rate = self.profile.exploration_rate
        relevant = [ctx.capability_weights[t] for t in ctx.tags if t in ctx.capability_weights]
        state = BidState(
            fit=ctx.fit_score, capability=sum(relevant) / len(relevant) if relevant else 0.0,
            reputation=float(ctx.reputation), workload=float(ctx.workload), reward_eth=ctx.reward_wei / 1e18,
            deadline_s=float(ctx.seconds_to_deadline), win_rate=0.0, competition=float(ctx.competing_bids),
        )  # fmt: skip
        action = model.act(state.vector())
        fraction = action_fraction(action)
        if fraction is None:
            return BidDecision(bid=False, amount_fraction=0.0, amount_wei=0, reason=f"RL v{model.version}: abstain")
        fraction = policy.clamp_fraction(fraction)
        return BidDecision(bid=True, amount_fraction=fraction, amount_wei=policy.bid_amount(ctx.reward_wei, fraction),
                           reason=f"RL v{model.version}: action {action}")  # fmt: skip
