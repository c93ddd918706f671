"""A market simulator with no chain and no Celery: do agents that learn bid better than fixed strategies?

The market follows the contracts' rules: the winner is the lowest amount/(reputation+1) with the reputation
the bidder had when it bid (ties to the earlier bid); a score of 50 or more pays the bid, a lower one pays
nothing and costs 10 reputation; reputation moves by (score-50)/5 on a pass, bounded 0..100. Agents have a
hidden true skill per tag; scores are that skill plus noise; executing a task costs ``EXECUTION_COST`` x
reward (the LLM bill), so winning a task you then fail loses money, and in the open auction every bid
placed costs its gas (``BID_COST_WEI``: a ``placeBid`` at 20 gwei), won or lost; a sealed bid is a
signature and costs nothing (``run_market(mode=AuctionMode.SEALED)``).

The learner (``rl_focal``) is the fleet's DQN with what makes it safe in this market: it never bids below
its learning profile's fit bar (one early run of failures sinks reputation so far that no bid can win
again: with the auction dividing by reputation+1, an agent at 6 cannot undercut one at 100), and its reward
counts the reputation a task moved (``REPUTATION_WEIGHT`` per point) besides the profit, because
reputation is what wins the next auctions.

``compare(seed)`` runs the same market (same competitors, same tasks, same noise) once with the focal
agent learning (DQN) and once per learning profile with the focal agent on the fixed
AdaptiveBiddingStrategy of that profile. Only the focal agent's strategy changes between runs.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentfleet import policy
from agentfleet.bidding.adaptive import AdaptiveBiddingStrategy
from agentfleet.bidding.context import BidContext
from agentfleet.bidding.costs import bid_cost_wei
from agentfleet.bidding.record import RECENT_BIDS
from agentfleet.bidding.reward import REPUTATION_WEIGHT, reputation_moved
from agentfleet.bidding.state import nearest_action
from agentfleet.profiles import AgentLearningConfig
from agentfleet.protocol.limits import INITIAL_REPUTATION, PASS_SCORE
from agentfleet.protocol.status import AuctionMode

if TYPE_CHECKING:  # torch: imported when a learner runs
    from agentfleet.bidding.dqn import ReinforcementLearning

TAGS = ("research", "coding", "data_analysis", "creative_writing", "blockchain")
EXECUTION_COST = 0.1  # of the reward
GAS_PRICE_WEI = 20 * 10**9  # an L1-like 20 gwei
BID_COST_WEI = bid_cost_wei(GAS_PRICE_WEI)  # what every placed bid costs its agent, won or lost
TRAIN_STEPS = 2  # gradient steps per task


@dataclass(frozen=True)
class Choice:
    """What a simulated agent decided on one task."""

    fraction: float | None  # of the reward; None: no bid
    action: int | None = None  # the DQN action behind it, when a learner decided


NO_BID = Choice(None)
Decide = Callable[[BidContext], Choice]
Learn = Callable[[BidContext, int, float], None]  # (context, action, reward)


@dataclass
class SimAgent:
    name: str
    skill: dict[str, float]  # hidden, 0..1
    weights: dict[str, int]  # what the agent (and its fit score) believes, 0..100
    decide: Decide
    reputation: int = INITIAL_REPUTATION
    recent: deque[int] = field(default_factory=lambda: deque(maxlen=RECENT_BIDS))  # 1 won, 0 lost, per bid
    profit: list[float] = field(default_factory=list)  # per task (0 when not winning)
    wins: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class SimBid:
    """One bid in a simulated auction; the lowest ``weighted`` wins, the earlier ``order`` on a tie."""

    weighted: float  # amount / (reputation + 1): the auction contract's ordering
    order: int
    agent: SimAgent
    fraction: float
    action: int | None


@dataclass(frozen=True)
class Competitor:
    name: str
    skill: dict[str, float]
    profile: str


def _competitors(rng: random.Random) -> list[Competitor]:
    profiles = ["balanced", "aggressive", "conservative", "explorer", "specialist"]
    out = []
    for i, profile in enumerate(profiles):
        skill = {t: rng.uniform(0.3, 0.9) for t in TAGS}
        out.append(Competitor(f"fixed-{profile}-{i}", skill, profile))
    return out


def _weights(skill: dict[str, float], rng: random.Random) -> dict[str, int]:
    return {t: int(policy.clamp_score(100 * s + rng.gauss(0, 8))) for t, s in skill.items()}


def _win_rate(agent: SimAgent) -> float:
    return sum(agent.recent) / len(agent.recent) if agent.recent else 0.0


def _fixed(profile: str) -> Decide:
    strategy = AdaptiveBiddingStrategy(AgentLearningConfig.get_profile(profile))

    def decide(ctx: BidContext) -> Choice:
        decision = strategy.decide(ctx)
        return Choice(decision.amount_fraction) if decision.bid else NO_BID

    return decide


def run_market(
    focal: Decide,
    *,
    seed: int,
    tasks: int,
    learn: Learn | None = None,
    progress: Callable[[int], None] | None = None,
    mode: AuctionMode = AuctionMode.OPEN,
) -> list[SimAgent]:
    """One market run in ``mode``; returns every agent, the focal agent first."""
    bid_cost = BID_COST_WEI if mode == AuctionMode.OPEN else 0
    rng = random.Random(seed)
    focal_skill = {t: s for t, s in zip(TAGS, (0.85, 0.75, 0.45, 0.3, 0.8), strict=True)}
    agents = [SimAgent("focal", focal_skill, _weights(focal_skill, rng), focal)]
    for rival in _competitors(rng):
        agents.append(SimAgent(rival.name, rival.skill, _weights(rival.skill, rng), _fixed(rival.profile)))
    noise = random.Random(seed + 1)
    for step in range(tasks):
        tag = rng.choice(TAGS)
        reward = rng.uniform(0.5, 2.0)
        bids: list[SimBid] = []
        contexts: dict[str, BidContext] = {}
        for order, agent in enumerate(agents):
            ctx = BidContext(
                task_id=step + 1,
                reward_wei=int(reward * 1e18),
                tags=[tag],
                fit_score=agent.weights[tag],
                capability_weights=agent.weights,
                reputation=agent.reputation,
                competing_bids=len(agents) - 1,
                recent_win_rate=_win_rate(agent),
                bid_cost_wei=bid_cost,
            )
            contexts[agent.name] = ctx
            choice = agent.decide(ctx)
            if choice.fraction is not None:
                fraction = policy.clamp_fraction(choice.fraction)
                weighted = fraction * reward / (agent.reputation + 1)
                bids.append(SimBid(weighted, order, agent, fraction, choice.action))
        winner = min(bids, key=lambda bid: (bid.weighted, bid.order)) if bids else None
        reputation_before = agents[0].reputation
        for agent in agents:
            won = winner is not None and winner.agent is agent
            gain, score = 0.0, float("nan")
            if won and winner is not None:
                score = float(policy.clamp_score(100 * agent.skill[tag] + noise.gauss(0, 12)))
                gain = (winner.fraction if score >= PASS_SCORE else 0.0) * reward - EXECUTION_COST * reward
                agent.reputation = min(100, max(0, agent.reputation + reputation_moved(int(score))))
                agent.scores.append(score)
            if any(bid.agent is agent for bid in bids):
                agent.recent.append(int(won))
                gain -= bid_cost / 1e18  # an open bid's transaction, paid win or lose
            agent.profit.append(gain)
            agent.wins.append(int(won))
        if learn is not None:
            focal_bid = next((bid for bid in bids if bid.agent is agents[0]), None)
            action = focal_bid.action if focal_bid else 0
            moved = agents[0].reputation - reputation_before
            learn(
                contexts["focal"],
                action if action is not None else 0,
                agents[0].profit[-1] / reward + REPUTATION_WEIGHT * moved,
            )
        if progress is not None:
            progress(step)
    return agents


def rl_focal(seed: int, profile: str = "balanced") -> tuple[Decide, Learn]:
    """A learning focal agent: the workers' ``RLBiddingStrategy`` itself (profile fit bar, exploration
    schedule, state), its DQN kept in memory and trained after every task (a contextual bandit)."""
    import torch

    from agentfleet.bidding.dqn import ReinforcementLearning
    from agentfleet.bidding.rl import RLBiddingStrategy
    from agentfleet.bidding.state import state_of

    torch.set_num_threads(1)
    learning = AgentLearningConfig.get_profile(profile)
    bar = learning.min_fit_to_bid
    model = ReinforcementLearning("focal", seed=seed, batch_size=32, exploration_rate=0.3, learning_rate=0.003)
    strategy = RLBiddingStrategy("focal", learning, _OneModel(model))  # the workers' strategy, model in memory

    def decide(ctx: BidContext) -> Choice:
        decision = strategy.decide(ctx)
        if not decision.bid:
            return NO_BID
        return Choice(decision.amount_fraction, nearest_action(decision.amount_fraction))

    def learn(ctx: BidContext, action: int, reward: float) -> None:
        if ctx.fit_score < bar:
            return  # nothing was decided: nothing to learn
        state = state_of(ctx).vector()
        model.remember(state, action, reward, state, True)
        for _ in range(TRAIN_STEPS):
            model.train_step()

    return decide, learn


class _OneModel:
    """The learner's model in memory where the workers pass their file-backed ``PolicyCache``: it acts with
    the torch model itself (its own seeded generator explores, so a run is reproducible)."""

    def __init__(self, model: ReinforcementLearning) -> None:
        self.model = model

    def get(self, _agent: str) -> _OneModel:
        return self

    @property
    def version(self) -> int:
        return self.model.version

    @property
    def decisions(self) -> int:
        return self.model.decisions

    def act(self, state: list[float], exploration_rate: float) -> int:
        self.model.exploration_rate = exploration_rate
        return self.model.act(state)


def compare(seed: int = 11, tasks: int = 3000, progress: Callable[[int], None] | None = None) -> dict[str, SimAgent]:
    """The focal agent after the run: learning ("rl"), and with each fixed learning profile (same market)."""
    decide, learn = rl_focal(seed)
    results = {"rl": run_market(decide, seed=seed, tasks=tasks, learn=learn, progress=progress)[0]}
    for profile in AgentLearningConfig.PROFILES:
        results[profile] = run_market(_fixed(profile), seed=seed, tasks=tasks)[0]
    return results


def summary(results: dict[str, SimAgent], window: int = 500) -> list[dict[str, float | str]]:
    """Rows for a table: profit over the first and last ``window`` tasks, in total, and the last wins."""
    rows: list[dict[str, float | str]] = []
    for name, a in results.items():
        first, last = sum(a.profit[:window]), sum(a.profit[-window:])
        rows.append(
            {"strategy": name, "first": first, "last": last, "total": sum(a.profit), "last_wins": sum(a.wins[-window:])}
        )
    return rows


def sweep(seeds: list[int], tasks: int = 3000, progress: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """Per seed: the learner's first and last ``500`` against the best fixed profile in hindsight."""
    rows = []
    for seed in seeds:
        table = {row["strategy"]: row for row in summary(compare(seed, tasks))}
        learner = table.pop("rl")
        best = max(table.values(), key=lambda row: float(row["last"]))
        rows.append(
            {
                "seed": seed,
                "rl_first": learner["first"],
                "rl_last": learner["last"],
                "best_fixed": best["strategy"],
                "best_last": best["last"],
            }
        )
        if progress is not None:
            progress()
    return rows


def _rolling(values: list[float], window: int = 100) -> list[float]:
    out, total, seen = [], 0.0, deque[float]()
    for value in values:
        seen.append(value)
        total += value
        if len(seen) > window:
            total -= seen.popleft()
        out.append(total / len(seen))
    return out


def plot(results: dict[str, SimAgent], path: str) -> str:
    """Learning curves of the focal agent per strategy: cumulative profit, win rate and average score
    (rolling over 100 tasks / 100 wins). PNG, matplotlib Agg."""
    import itertools

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (profit, wins, scores) = plt.subplots(1, 3, figsize=(16, 4.8))
    for name, agent in results.items():
        width = 2.5 if name == "rl" else 1.0
        profit.plot(list(itertools.accumulate(agent.profit)), label=name, linewidth=width)
        wins.plot(_rolling([float(w) for w in agent.wins]), label=name, linewidth=width)
        if agent.scores:
            scores.plot(_rolling(agent.scores), label=name, linewidth=width)
    profit.set(title="cumulative profit", xlabel="task", ylabel="ETH")
    wins.set(title="win rate (last 100 tasks)", xlabel="task", ylim=(0, 1))
    scores.set(title="average score (last 100 wins)", xlabel="win", ylim=(0, 100))
    profit.legend(fontsize=8)
    fig.suptitle("focal agent: learning (rl) vs each fixed learning profile, same market")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
