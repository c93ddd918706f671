"""A market simulator with no chain and no Celery: do agents that learn bid better than fixed strategies?

The market follows the contracts' rules: the winner is the lowest amount/(reputation+1) with the reputation
the bidder had when it bid (ties to the earlier bid); a score of 50 or more pays the bid, a lower one pays
nothing and costs 10 reputation; reputation moves by (score-50)/5 on a pass, bounded 0..100; the winner's
capability weight of the tag moves a quarter of the way toward the score. Agents have a hidden true skill per
tag; scores are that skill plus noise; an agent's fit is its capability weight, drawn around the skill and
then moved by its scores, as on chain. Money is counted as the fleet counts it
(:mod:`agentfleet.bidding.costs`): the price earned, minus the execution's LLM bill (``EXECUTION_COST`` x
reward), the evaluation's LLM call (``EVALUATION_COST_ETH`` per task considered), every open bid's gas
(``BID_COST_WEI``, won or lost; a sealed bid is a signature and costs nothing) and the winner's task
transactions (``WINNER_GAS``).

A market's shape is a parameter (:class:`MarketShape`: number and profiles of the competitors, their skill
range, the focal agent's skills, the reward range, the tag mix, the auction mode); :data:`MARKETS` names a
few. Every auction's clearing price goes into a :class:`~agentfleet.bidding.market.MarketBook` with the
reputations it was weighted at, and the focal agent sees the same
:class:`~agentfleet.bidding.market.MarketFeatures` a worker reads from Redis (re-weighted at the bidders'
reputations now).

Scores use common random numbers: every task draws one score noise per agent, whoever wins, so the score an
agent would get on task t is the same in every run of the seed. Why: drawn only for the winner from one
stream, a single different winner re-drew every later score of every agent, and two versions of the learner
(or the learner and a fixed profile) met different markets for a reason that had nothing to do with their
bids (docs/learning-experiments.md, eighth session).

``compare(seed, market=...)`` runs the same market (same competitors, tasks and noise) once with the focal
agent learning (``rl``: the fleet's DQN and ``RLBiddingStrategy``), once with the bid-shading baseline
(``shading``), and once per learning profile on the fixed AdaptiveBiddingStrategy.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from agentfleet import policy
from agentfleet.bidding.adaptive import AdaptiveBiddingStrategy
from agentfleet.bidding.context import BidContext
from agentfleet.bidding.costs import WINNER_GAS, bid_cost_wei
from agentfleet.bidding.market import NOBODY, Clearing, MarketBook
from agentfleet.bidding.record import RECENT_BIDS
from agentfleet.bidding.reward import Settlement, hindsight, reputation_moved, weight_moved
from agentfleet.bidding.rl import fit_bar, strongest_fit
from agentfleet.bidding.shading import ShadingBiddingStrategy
from agentfleet.bidding.state import ANCHOR, learned_fit, nearest_action, state_of
from agentfleet.profiles import AgentLearningConfig
from agentfleet.protocol.limits import INITIAL_REPUTATION, PASS_SCORE
from agentfleet.protocol.status import AuctionMode

if TYPE_CHECKING:  # torch: imported when a learner runs
    from agentfleet.bidding.dqn import ReinforcementLearning

TAGS = ("research", "coding", "data_analysis", "creative_writing", "blockchain")
EXECUTION_COST = 0.1  # of the reward: the execution's LLM bill
EVALUATION_COST_ETH = 0.0005  # the evaluation's LLM call, per task an agent considers
GAS_PRICE_WEI = 20 * 10**9  # an L1-like 20 gwei
BID_COST_WEI = bid_cost_wei(GAS_PRICE_WEI)  # what every placed open bid costs its agent, won or lost
WINNER_COST_WEI = WINNER_GAS * GAS_PRICE_WEI  # the winner's task transactions
TRAIN_STEPS = 4  # gradient steps per task, as the trainer's (2 learned less: README "Learning")
WINDOW = 500  # tasks compared at the start and the end of a run
SCORE_SD = 12  # score points: how far a task's score falls from the agent's skill x 100 (one sd)


@dataclass(frozen=True)
class MarketShape:
    """What a market looks like; every field is a knob of :func:`run_market`."""

    name: str = "default"
    competitors: tuple[str, ...] = ("balanced", "aggressive", "conservative", "explorer", "specialist")
    strength: tuple[float, float] = (0.3, 0.9)  # the competitors' true skill per tag, uniform in this range
    focal_skill: tuple[float, ...] = (0.85, 0.75, 0.45, 0.3, 0.8)  # per tag of TAGS
    reward: tuple[float, float] = (0.5, 2.0)  # ETH, uniform
    tag_mix: tuple[float, ...] = (1, 1, 1, 1, 1)  # relative frequency of each tag
    mode: AuctionMode = AuctionMode.OPEN
    # Every scored task moves its winner's capability weight of the tag a quarter of the way toward the score,
    # as the IncentiveEngine does on chain (so a fit that lies corrects itself on the tasks the agent wins).
    weights_follow_scores: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError(f"market {self.name!r}: " + "; ".join(problems))

    def problems(self) -> list[str]:
        """What makes this shape impossible to run, in words a user can act on (empty: none). Why checked at
        construction: a wrong knob (a skill of 85 instead of 0.85, four tags' values) would otherwise run a
        market nobody meant and print numbers that look real."""
        out: list[str] = []
        profiles = AgentLearningConfig.PROFILES
        unknown = [name for name in self.competitors if name not in profiles]
        if unknown:
            out.append(f"unknown competitor profile {unknown[0]!r} (profiles: {', '.join(profiles)})")
        if len(self.strength) != 2 or not 0 <= self.strength[0] <= self.strength[1] <= 1:
            out.append(f"strength needs low,high with 0 <= low <= high <= 1, got {self.strength}")
        if len(self.focal_skill) != len(TAGS) or not all(0 <= s <= 1 for s in self.focal_skill):
            out.append(f"focal_skill needs one value per tag {TAGS}, each 0..1, got {self.focal_skill}")
        if len(self.reward) != 2 or not 0 < self.reward[0] <= self.reward[1] < math.inf:
            out.append(f"reward needs low,high in ETH with 0 < low <= high, got {self.reward}")
        if len(self.tag_mix) != len(TAGS) or not all(0 <= w < math.inf for w in self.tag_mix) or sum(self.tag_mix) <= 0:
            out.append(
                f"tag_mix needs one finite value per tag {TAGS}, none negative, some positive, got {self.tag_mix}"
            )
        return out


MARKETS: dict[str, MarketShape] = {
    m.name: m
    for m in (
        MarketShape(description="five competitors, one per fixed profile, of mixed skill"),
        MarketShape(
            "crowded",
            competitors=("balanced", "aggressive", "conservative", "explorer", "specialist") * 3,
            description="fifteen competitors",
        ),
        MarketShape("sparse", competitors=("balanced", "conservative"), description="two competitors"),
        MarketShape("strong", strength=(0.6, 0.95), description="competitors as good as the focal agent or better"),
        MarketShape("weak", strength=(0.15, 0.55), description="weak competitors"),
        MarketShape(
            "specialist",
            focal_skill=(0.92, 0.35, 0.3, 0.25, 0.4),
            tag_mix=(3, 1, 1, 1, 1),
            description="a focal agent good at one tag, which is also the most frequent one",
        ),
        MarketShape("generalist", focal_skill=(0.65,) * 5, description="a focal agent middling at everything"),
        MarketShape("whales", reward=(0.05, 20.0), description="rewards from 0.05 to 20 ETH"),
        MarketShape("sealed", mode=AuctionMode.SEALED, description="sealed bids: no gas for a bid"),
    )
}


@dataclass(frozen=True)
class Choice:
    """What a simulated agent decided on one task."""

    fraction: float | None  # of the reward; None: no bid
    action: int | None = None  # the DQN action behind it, when a learner decided


NO_BID = Choice(None)
Decide = Callable[[BidContext], Choice]
Learn = Callable[[BidContext, "Settled"], None]


@dataclass(frozen=True)
class Settled:
    """How one task ended for the focal agent: what its learner is told."""

    action: int  # 0: no bid
    won: bool
    score: float | None  # when it won
    reputation_moved: int
    price_to_beat: float | None  # the others' best bid at the focal agent's reputation, of the reward
    fraction: float | None  # the bid placed, of the reward
    rivals: bool  # others bid on the task
    rival_reputation: int | None = None  # the best rival bid's bidder's reputation when it bid
    rival_move: float | None = None  # that rival's mean reputation move on the tag's tasks it completed lately


@dataclass
class SimAgent:
    name: str
    skill: dict[str, float]  # hidden, 0..1
    weights: dict[str, int]  # what the agent (and its fit score) believes, 0..100
    decide: Decide
    reputation: int = INITIAL_REPUTATION
    recent: deque[int] = field(default_factory=lambda: deque(maxlen=RECENT_BIDS))  # 1 won, 0 lost, per bid
    profit: list[float] = field(default_factory=list)  # ETH per task, all costs paid
    paid: list[float] = field(default_factory=list)  # ETH per task: the price earned (a passed win's bid)
    ceiling: list[float] = field(default_factory=list)  # ETH per task, the focal agent's: see ``ceiling_of``
    offered: list[float] = field(default_factory=list)  # ETH per task: its reward if the agent expects to pass it
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


def _weights(skill: dict[str, float], rng: random.Random) -> dict[str, int]:
    return {t: int(policy.clamp_score(100 * s + rng.gauss(0, 8))) for t, s in skill.items()}


def _win_rate(agent: SimAgent) -> float:
    return sum(agent.recent) / len(agent.recent) if agent.recent else 0.0


def fixed_focal(profile: str) -> Decide:
    """A fixed strategy: the seed's AdaptiveBiddingStrategy with a learning profile (every competitor's too)."""
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
    market: MarketShape = MARKETS["default"],
) -> list[SimAgent]:
    """One market run; returns every agent, the focal agent first."""
    bid_cost = BID_COST_WEI if market.mode == AuctionMode.OPEN else 0
    rng = random.Random(seed)
    focal_skill = dict(zip(TAGS, market.focal_skill, strict=True))
    agents = [SimAgent("focal", focal_skill, _weights(focal_skill, rng), focal)]
    skills = [{t: rng.uniform(*market.strength) for t in TAGS} for _ in market.competitors]
    for i, (profile, skill) in enumerate(zip(market.competitors, skills, strict=True)):
        agents.append(SimAgent(f"fixed-{profile}-{i}", skill, _weights(skill, rng), fixed_focal(profile)))
    noise = random.Random(seed + 1)
    book = MarketBook()
    even = len(set(market.tag_mix)) == 1
    for step in range(tasks):
        tag = rng.choice(TAGS) if even else rng.choices(TAGS, weights=market.tag_mix)[0]
        reward = rng.uniform(*market.reward)
        bids: list[SimBid] = []
        focal_ctx: BidContext | None = None
        reputations = {agent.name.lower(): agent.reputation for agent in agents}  # the listener's hash, in the fleet
        for order, agent in enumerate(agents):
            ctx = BidContext(
                task_id=step + 1,
                reward_wei=int(reward * 1e18),
                tags=[tag],
                fit_score=agent.weights[tag],
                capability_weights=agent.weights,  # validated into a copy: a settled task's move stays out
                reputation=agent.reputation,
                competing_bids=len(agents) - 1,  # the rivals it knows of
                recent_win_rate=_win_rate(agent),
                bid_cost_wei=bid_cost,
                market=book.features([tag], agent.name, reputations) if order == 0 else None,
            )
            if order == 0:
                focal_ctx = ctx
            choice = agent.decide(ctx)
            if choice.fraction is not None:
                fraction = policy.clamp_fraction(choice.fraction)
                weighted = fraction * reward / (agent.reputation + 1)
                bids.append(SimBid(weighted, order, agent, fraction, choice.action))
        ranked = sorted(bids, key=lambda bid: (bid.weighted, bid.order))
        winner = ranked[0] if ranked else None
        if winner is not None:
            second = ranked[1] if len(ranked) > 1 else None
            book.record(
                tag,
                Clearing(
                    step + 1,
                    winner.agent.name,
                    winner.weighted / reward,
                    second.weighted / reward if second else NOBODY,
                    len(bids),
                    winner_reputation=reputations[winner.agent.name.lower()],
                    runner_up_agent=second.agent.name if second else "",
                    runner_up_reputation=reputations[second.agent.name.lower()] if second else -1,
                ),
            )
        reputation_before = agents[0].reputation
        standing = [agent.reputation for agent in agents]  # as they bid
        settled = None
        luck = [noise.gauss(0, SCORE_SD) for _ in agents]  # drawn for every agent, winner or not: see above
        for agent, chance in zip(agents, luck, strict=True):
            won = winner is not None and winner.agent is agent
            believed = agent.weights[tag]  # the weight it bid with
            gain, score = -EVALUATION_COST_ETH, None
            if won and winner is not None:
                score = float(policy.clamp_score(100 * agent.skill[tag] + chance))
                paid = winner.fraction * reward if score >= PASS_SCORE else 0.0
                agent.paid.append(paid)
                gain += paid - EXECUTION_COST * reward - WINNER_COST_WEI / 1e18
                book.record_move([tag], agent.name, reputation_moved(int(score)))  # after the auction's features
                book.record_score([tag], agent.name, int(score))
                agent.reputation = min(100, max(0, agent.reputation + reputation_moved(int(score))))
                if market.weights_follow_scores:
                    agent.weights[tag] = weight_moved(agent.weights[tag], int(score))
                agent.scores.append(score)
            else:
                agent.paid.append(0.0)
            placed = next((bid for bid in bids if bid.agent is agent), None)
            if placed is not None:
                agent.recent.append(int(won))
                gain -= bid_cost / 1e18  # an open bid's transaction, paid win or lose
            agent.profit.append(gain)
            agent.wins.append(int(won))
            agent.offered.append(reward if believed >= PASS_SCORE else 0.0)
            if agent is agents[0]:
                action = placed.action if placed is not None and placed.action is not None else 0
                moved = agent.reputation - reputation_before
                others = [bid for bid in ranked if bid.agent is not agent]  # the best rival first
                beat = (others[0].weighted / reward if others else NOBODY) * (reputation_before + 1)
                placed_fraction = placed.fraction if placed else None
                rival = standing[others[0].order] if others else None
                rival_move = book.expected_move([tag], others[0].agent.name) if others else None  # before its own
                settled = Settled(action, won, score, moved, beat, placed_fraction, bool(others), rival, rival_move)
                agent.ceiling.append(ceiling_of(beat, reward) if placed is not None else 0.0)
        if learn is not None and focal_ctx is not None and settled is not None:
            learn(focal_ctx, settled)
        if progress is not None:
            progress(step)
    return agents


def ceiling_of(price_to_beat: float, reward: float) -> float:
    """The most a bid on this task could have been paid (ETH): just under the price to beat, never over the
    reward. Summed over the tasks an agent bid on, it is the ceiling of what any bidding on those tasks earns:
    when the ceiling of the last tasks is below what the agent was paid on its first, the market hardened
    (rivals' reputation rose) beyond what any bid level wins back."""
    return min(1.0, price_to_beat) * reward


def rl_focal(seed: int, profile: str = "balanced") -> tuple[Decide, Learn]:
    """A learning focal agent: the workers' ``RLBiddingStrategy`` itself (profile fit bar, UCB exploration,
    state), its DQN kept in memory and trained after every task on the money the task made (a contextual
    bandit, as the trainer trains it)."""
    import torch

    from agentfleet.bidding.dqn import ReinforcementLearning, model_options
    from agentfleet.bidding.rl import RLBiddingStrategy

    torch.set_num_threads(1)
    learning = AgentLearningConfig.get_profile(profile)
    model = ReinforcementLearning("focal", seed=seed, **model_options(learning))  # as the trainer builds it
    strategy = RLBiddingStrategy("focal", learning, _OneModel(model))  # the workers' strategy, model in memory

    def decide(ctx: BidContext) -> Choice:
        decision = strategy.decide(ctx)
        if not decision.bid:
            return Choice(None, 0)
        return Choice(decision.amount_fraction, nearest_action(decision.amount_fraction, state_of(ctx).anchor))

    def learn(ctx: BidContext, settled: Settled) -> None:
        if learned_fit(ctx) < fit_bar(learning, ctx.reputation, strongest_fit(ctx)):
            return  # nothing was decided: nothing to learn
        state = state_of(ctx).vector()
        for action, reward in hindsight(_settlement(ctx, settled), state[ANCHOR], settled.action).items():
            model.remember(state, action, reward, state, True)
        for _ in range(TRAIN_STEPS):
            model.train_step()

    return decide, learn


def _settlement(ctx: BidContext, settled: Settled) -> Settlement:
    reward_eth = ctx.reward_wei / 1e18
    return Settlement(
        reward_eth=reward_eth,
        price_to_beat=settled.price_to_beat,
        won=settled.won,
        passed=settled.score is not None and settled.score >= PASS_SCORE,
        moved=settled.reputation_moved,
        bid_cost_eth=ctx.bid_cost_wei / 1e18,
        win_cost_eth=EXECUTION_COST * reward_eth + WINNER_COST_WEI / 1e18,
        evaluation_cost_eth=EVALUATION_COST_ETH,
        bid_fraction=settled.fraction,
        rivals=settled.rivals,
        rival_reputation=settled.rival_reputation,
        rival_move=settled.rival_move,
        fit=learned_fit(ctx),
        reputation=ctx.reputation,
    )


def shading_focal(profile: str = "balanced") -> tuple[Decide, Learn]:
    """The baseline the DQN must beat: :class:`~agentfleet.bidding.shading.ShadingBiddingStrategy` (bid
    shading against the recent prices to beat), with the workers' reputation guard; it learns nothing."""
    learning = AgentLearningConfig.get_profile(profile)
    strategy = ShadingBiddingStrategy(learning)

    def decide(ctx: BidContext) -> Choice:
        if ctx.fit_score < fit_bar(learning, ctx.reputation, strongest_fit(ctx)):
            return NO_BID
        decision = strategy.decide(ctx)
        return Choice(decision.amount_fraction) if decision.bid else NO_BID

    def learn(_ctx: BidContext, _settled: Settled) -> None:
        return None

    return decide, learn


class _OneModel:
    """The learner's model in memory where the workers pass their file-backed ``PolicyCache``: it acts with
    the torch model itself, so a run is reproducible."""

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


def compare(
    seed: int = 11,
    tasks: int = 3000,
    progress: Callable[[int], None] | None = None,
    *,
    market: MarketShape = MARKETS["default"],
    baselines: bool = True,
) -> dict[str, SimAgent]:
    """The focal agent after the run: learning ("rl"), bid shading ("shading", with ``baselines``), and with
    each fixed learning profile, all in the same market."""
    decide, learn = rl_focal(seed)
    results = {"rl": run_market(decide, seed=seed, tasks=tasks, learn=learn, progress=progress, market=market)[0]}
    if baselines:
        decide, learn = shading_focal()
        results["shading"] = run_market(decide, seed=seed, tasks=tasks, learn=learn, market=market)[0]
    for profile in AgentLearningConfig.PROFILES:
        results[profile] = run_market(fixed_focal(profile), seed=seed, tasks=tasks, market=market)[0]
    return results


def summary(results: dict[str, SimAgent], window: int = WINDOW) -> list[dict[str, float | str]]:
    """Rows for a table: profit over the first and last ``window`` tasks, in total, and the last wins."""
    rows: list[dict[str, float | str]] = []
    for name, a in results.items():
        first, last = sum(a.profit[:window]), sum(a.profit[-window:])
        rows.append(
            {"strategy": name, "first": first, "last": last, "total": sum(a.profit), "last_wins": sum(a.wins[-window:])}
        )
    return rows


def sweep(
    seeds: list[int],
    tasks: int = 3000,
    progress: Callable[[], None] | None = None,
    *,
    market: MarketShape = MARKETS["default"],
    jobs: int = 1,
) -> list[dict[str, Any]]:
    """Per seed (one market each): the learner's first and last ``WINDOW`` against the best fixed profile in
    hindsight (and the shading baseline's last); what the learner was paid in its first ``WINDOW`` and the
    ceiling of its last (``ceiling_of``): a learner behind its first whose ceiling is under what it was paid
    then could not have caught up by bidding otherwise. With ``jobs`` > 1 the seeds run in that many
    processes (spawned: a forked torch can hang); every seed is its own deterministic run, so the rows are
    the same, in the order of ``seeds``."""
    if jobs <= 1 or len(seeds) <= 1:
        rows = []
        for seed in seeds:
            rows.append(sweep_row(seed, tasks, market))
            if progress is not None:
                progress()
        return rows
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    done: dict[int, dict[str, Any]] = {}
    with ProcessPoolExecutor(min(jobs, len(seeds)), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(sweep_row, seed, tasks, market): i for i, seed in enumerate(seeds)}
        for future in as_completed(futures):
            done[futures[future]] = future.result()
            if progress is not None:
                progress()
    return [done[i] for i in range(len(seeds))]


def sweep_row(seed: int, tasks: int, market: MarketShape) -> dict[str, Any]:
    """One row of :func:`sweep`: the market of ``seed`` run with every strategy."""
    results = compare(seed, tasks, market=market)
    learning, shading = results.pop("rl"), results.pop("shading")
    row = row_of(seed, market.name, learning, {name: agent.profit for name, agent in results.items()})
    return {**row, "shading_last": sum(shading.profit[-WINDOW:])}


def row_of(seed: int, market: str, learning: SimAgent, fixed: dict[str, list[float]]) -> dict[str, Any]:
    """A sweep row from the learner's run and each fixed profile's profit per task (ETH): the learner's first
    and last ``WINDOW``, the best fixed profile in hindsight, and what ``why_behind`` reads."""
    best = max(fixed, key=lambda name: sum(fixed[name][-WINDOW:]))
    return {
        "seed": seed,
        "market": market,
        "rl_first": sum(learning.profit[:WINDOW]),
        "rl_last": sum(learning.profit[-WINDOW:]),
        "best_fixed": best,
        "best_last": sum(fixed[best][-WINDOW:]),
        "best_first": sum(fixed[best][:WINDOW]),
        "rl_paid_first": sum(learning.paid[:WINDOW]),
        "rl_paid_last": sum(learning.paid[-WINDOW:]),
        "ceiling_first": sum(learning.ceiling[:WINDOW]),
        "ceiling_last": sum(learning.ceiling[-WINDOW:]),
        "offered_first": sum(learning.offered[:WINDOW]),
        "offered_last": sum(learning.offered[-WINDOW:]),
    }


RATIO_FLOOR = 0.01  # a learner that earned nothing where a fixed profile earned: its ratio in the mean


def geometric_mean_ratio(rows: list[dict[str, Any]], key: str = "rl_last") -> float | None:
    """The geometric mean of ``key`` / best fixed over the rows where the best fixed profile earned anything
    (a ratio below ``RATIO_FLOOR`` counts as the floor); None when no row qualifies."""
    ratios = [max(RATIO_FLOOR, r[key] / r["best_last"]) for r in rows if r["best_last"] > 0]
    return math.exp(sum(math.log(x) for x in ratios) / len(ratios)) if ratios else None


def hardened(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``sweep`` rows where the learner's last ``WINDOW`` earned less than its first although no bidding
    could have done better: the ceiling of its last tasks is under what it was paid on its first."""
    return [r for r in rows if r["rl_last"] < r["rl_first"] and r["ceiling_last"] < r["rl_paid_first"]]


def why_behind(row: dict[str, Any]) -> str:
    """What a ``sweep`` row behind its first ``WINDOW`` says about why, in numbers: the money the task stream
    offered in each window (rewards of the tasks on tags the agent expects to pass: the market's draw, the same
    whatever anyone bids), whether the market hardened (``hardened``), and how the best fixed profile's own
    last window compares with its first (a market that fell for every strategy, not only the learner)."""
    parts = []
    if row["offered_first"] > 0:
        change = row["offered_last"] / row["offered_first"] - 1
        parts.append(
            f"the tasks it can pass offered {row['offered_last']:.0f} ETH in its last {WINDOW} against "
            f"{row['offered_first']:.0f} in its first ({change:+.0%})"
        )
    if hardened([row]):
        parts.append(
            f"the market hardened: the most any bids on the tasks it bid on in its last {WINDOW} could have been "
            f"paid, {row['ceiling_last']:.0f} ETH, is under what it was paid in its first, {row['rl_paid_first']:.0f}"
        )
    if row["best_first"] > 0:
        parts.append(
            f"the best fixed profile ({row['best_fixed']}) earned {row['best_last'] / row['best_first']:.2f}x its "
            f"first {WINDOW} in its last"
        )
    return "; ".join(parts)


def shaped(name: str, **overrides: Any) -> MarketShape:
    """A named market, with fields replaced (e.g. ``shaped("default", strength=(0.5, 0.9))``)."""
    try:
        base = MARKETS[name]
    except KeyError:
        raise ValueError(f"unknown market {name!r}; choose one of {', '.join(MARKETS)}") from None
    return replace(base, **overrides)


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
    fig.suptitle("focal agent: learning (rl) vs bid shading and each fixed learning profile, same market")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
