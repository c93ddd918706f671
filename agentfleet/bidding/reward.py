"""The reward a settled bid teaches: the money it made (price earned minus the execution's and evaluation's LLM
bill, the bid's gas and the winner's task transactions) plus the reputation it moved, per unit of the task's
reward; and, in hindsight, what every other bid level would have earned in the same auction.

One definition for the trainer (real outcomes) and the simulator (its market), so what the agent learns in
the simulator is what it learns in the fleet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from agentfleet.bidding.costs import WINNER_GAS
from agentfleet.bidding.record import BidRecord
from agentfleet.bidding.state import ACTIONS, ANCHOR, FIT, REPUTATION, action_fraction
from agentfleet.policy import Address
from agentfleet.protocol.limits import FAILURE_PENALTY, PASS_SCORE, REPUTATION_STEP

# Reward per reputation point, in units of the task's reward, where the reputation is unknown; at the cap a
# point is worth this much by ``reputation_value`` too (0.05 before issue 15)
REPUTATION_WEIGHT = 0.02
# Reputation a task lost (or left) to a rival hands that rival, in points (``rival_gain``): about 5 a task,
# but unlike the agent's own points (which its failures take back) a rival's stay, and each divides every later
# price the agent must beat where that rival is the one to beat. Measured in the simulator (README "Learning"):
# valued at 5 points, the learner's last 500 tasks fell behind its first in 6 of 90 runs; at 30, capped, in 3
# (4 with the recency replay of dqn.py, which makes the default shape 10 of 10).
RIVAL_GAIN = 30
MAX_REPUTATION = 100  # IncentiveEngine caps reputation here: a rival at the cap gains nothing more
# A reputation point's worth falls as reputation rises: the auction divides a bid by reputation + 1, so the
# same point changes the price an agent must stay under by 1/(r + 1), 1 % at 100 and 10 % at 9. Valued as
# REPUTATION_SCALE x ln((r' + 1) / (r + 1)) (``reputation_value``), scaled so that a failure at the cap still
# costs REPUTATION_WEIGHT x 10 (0.2 of the reward); at 50 it costs 0.42, at 20 0.77.
REPUTATION_SCALE = (
    REPUTATION_WEIGHT * FAILURE_PENALTY / math.log((MAX_REPUTATION + 1) / (MAX_REPUTATION + 1 - FAILURE_PENALTY))
)


class Outcome(BaseModel):
    """The trainer's message: how one agent's bid on one task ended (``event``: the chain event, if any)."""

    agent: Address
    task_id: int = Field(ge=1)
    outcome: Literal["won", "lost", "failed"]
    event: dict[str, Any] | None = None


def reputation_moved(score: int) -> int:
    """Reputation points a completed task with this score moves (the IncentiveEngine's rule)."""
    if score >= PASS_SCORE:
        return (score - PASS_SCORE) // REPUTATION_STEP
    return -FAILURE_PENALTY


def weight_moved(weight: int, score: int) -> int:
    """A capability weight after a scored task of its tag (the IncentiveEngine's ``_moveWeights``): a quarter of
    the way toward the score, the division truncated toward zero as Solidity's is, bounded 0..100."""
    return min(100, max(0, weight + int((score - weight) / 4)))


def capped_move(moved: float, reputation: float | None) -> float:
    """The reputation a move really changes for an agent at ``reputation`` (0..100): the IncentiveEngine
    bounds reputation to 0..MAX_REPUTATION, so a pass at 98 gains at most 2 points and a failure at 4 loses
    4. Why it matters: valued uncapped, a learner at the cap counted every pass's points it could not
    gain, and a learner near 0 feared a penalty it could no longer pay. None: unknown, the move as is."""
    if reputation is None:
        return moved
    return max(-reputation, min(MAX_REPUTATION - reputation, moved))


def reputation_value(moved: float, reputation: float | None) -> float:
    """What moving ``moved`` points from ``reputation`` is worth, in units of the task's reward:
    ``REPUTATION_SCALE x ln((r' + 1) / (r + 1))`` with r' the reputation after the move, bounded to
    0..MAX_REPUTATION (so a move the contract cannot make is worth nothing). Why a logarithm: the auction
    weighs a bid by 1 / (r + 1), so what a point buys is the share by which it lowers that weight; the log
    adds those shares up. Measured in the simulator (README "Learning"): valued flat (0.02 a point at any
    reputation) a learner that kept failing a frequent tag sat at 54 where its good tags paid a third less,
    and it counted a rival's rise from 29 the same as one from 90. None: reputation unknown, the flat
    ``REPUTATION_WEIGHT`` a point."""
    if reputation is None:
        return REPUTATION_WEIGHT * moved
    before = max(0.0, min(MAX_REPUTATION, reputation))
    after = before + capped_move(moved, before)
    return REPUTATION_SCALE * math.log((after + 1) / (before + 1))


def outcome_score(outcome: Outcome) -> int | None:
    """The TaskCompleted score a won or failed outcome's message carries (0..100); None for a lost bid, an
    expired task (no score: nothing was delivered) or a message without one."""
    score = ((outcome.event or {}).get("args") or {}).get("score")
    if outcome.outcome == "lost" or isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 100:
        return None
    return score


def outcome_move(outcome: Outcome) -> int | None:
    """The reputation an outcome moved its agent: the penalty for a failed or expired task, the TaskCompleted
    score's points for a passed one; None for a lost bid or a pass whose message carries no score."""
    if outcome.outcome == "failed":
        return -FAILURE_PENALTY
    score = outcome_score(outcome)
    if outcome.outcome != "won" or score is None or score < PASS_SCORE:
        return None
    return reputation_moved(score)


def money_reward(money_eth: float, moved: float, reward_eth: float, reputation: float | None = None) -> float:
    """What a settled bid teaches: the money the task made its agent (all costs paid), plus the reputation it
    moved from ``reputation`` (``reputation_value``: a point lowers the agent's weighted price by 1/(r + 1),
    so it wins the next auctions at a higher price), counted in units of the task's reward. Why per unit of
    reward: dividing every outcome of a task by the same positive number leaves the best bid of each state
    unchanged (the reward is in the state), and it keeps Q values and the UCB bonus on one scale from 0.01
    ETH tasks to 20 ETH ones."""
    return money_eth / max(reward_eth, 1e-18) + reputation_value(moved, reputation)


def settlement_of(
    outcome: Outcome,
    record: BidRecord,
    *,
    price_to_beat: float | None = None,
    rivals: bool = False,
    rival_reputation: int | None = None,
    rival_move: float | None = None,
    evaluation_usd: float = 0.0,
    execution_usd: float = 0.0,
    eth_per_usd: float = 0.0,
    gas_price_wei: int = 0,
) -> Settlement:
    """The fleet's settlement of one bid: the outcome message, the record the worker kept when it bid, the LLM
    bill of the agent on the task (USD, per role) and the gas price (for the winner's task transactions).

    Passed: the bid's price is paid, reputation moves by (score - 50) // 5 (from the TaskCompleted event's
    score when the message carries it). Failed or expired: nothing paid, the 10-point penalty. Lost: only
    the bid's gas and the evaluation were spent; ``execution_usd`` and the gas price then say what winning
    would have cost (hindsight values the levels that would have won with it, at the fit in the record)."""
    won = outcome.outcome != "lost"
    reputation = record.state[REPUTATION] * 100
    moved = capped_move(outcome_move(outcome) or 0, reputation)
    to_eth = max(0.0, eth_per_usd)
    return Settlement(
        reward_eth=max(1, record.reward_wei) / 1e18,
        price_to_beat=price_to_beat,
        rivals=rivals,
        rival_reputation=rival_reputation,
        rival_move=rival_move,
        won=won,
        passed=outcome.outcome == "won",
        moved=moved,
        bid_cost_eth=record.bid_cost_wei / 1e18,
        win_cost_eth=max(0.0, execution_usd) * to_eth + WINNER_GAS * max(0, gas_price_wei) / 1e18,
        evaluation_cost_eth=max(0.0, evaluation_usd) * to_eth,
        bid_fraction=record.amount_wei / max(1, record.reward_wei),
        fit=record.state[FIT] * 100,
        reputation=reputation,
    )


def reward_of(outcome: Outcome, record: BidRecord, **costs: Any) -> float:
    """The reward of the bid the agent placed (``settlement_of``'s keywords: the costs and the price to beat)."""
    settlement = settlement_of(outcome, record, **costs)
    return hindsight(settlement, record.state[ANCHOR], record.action)[record.action]


@dataclass(frozen=True)
class Settlement:
    """How an auction ended for one agent, in money (ETH), with what the others bid: enough to tell what any
    other bid level would have earned."""

    reward_eth: float
    price_to_beat: float | None  # the highest fraction that still won, at the agent's reputation; None: unknown
    won: bool
    passed: bool  # when it won: whether the score passed
    moved: float  # reputation points the task moved, capped at 0..100 (``capped_move``)
    bid_cost_eth: float  # an open bid's gas (0 sealed)
    win_cost_eth: float  # what winning cost (or would have) beyond the bid: the execution's LLM calls, the task's txs
    evaluation_cost_eth: float  # the LLM call that evaluated the task, paid whatever the decision
    bid_fraction: float | None = None  # the bid placed, of the reward (its level's when None)
    rivals: bool = False  # others bid: a level that loses hands the task to one of them
    rival_reputation: int | None = None  # the best rival bid's bidder's reputation (None: unknown)
    fit: float | None = None  # the agent's fit on the task (its estimate of the score); None: levels it did not
    # win with are not imputed
    rival_move: float | None = None  # the best rival's mean reputation move per task of the tag it won lately
    # (its recent scores: a reckless rival's is negative); None: unknown, the flat RIVAL_GAIN
    reputation: float | None = None  # the agent's own reputation when it bid (0..100); None: unknown, moves uncapped


def hindsight(settlement: Settlement, anchor: float, taken: int) -> dict[int, float]:
    """Rewards of every action whose outcome the settlement tells exactly, the ``taken`` one included.

    Why: the auction is public once it ends (open bids are events; sealed ones are revealed to finalize), so
    the agent knows the price it had to beat. Had it bid another level, the only unknown is the score of a
    task it did not execute: when it won, any level under the price to beat would have won the same task
    with the same score; any level over it would have lost. When it lost (or abstained), the levels over the
    price would have lost too, and the levels under it would have won a task it did not execute: with the
    agent's fit known, they are valued at the score the fit expects (``_expected_win``). One auction then
    teaches every action instead of one: a learner that wins at a low price learns at once that a higher
    price still won, and one that keeps losing learns what the price that wins is worth (what a bandit that
    sees only its own arm never does). Measured in the simulator (README "Learning"): without the levels a
    lost auction would have won, a learner that lost its first auctions kept bidding over the price.

    A task lost (or left) to a rival also costs the reputation the rival gains with it (``rival_gain``
    points, valued by ``reputation_value`` at the rival's reputation: the same currency as the agent's own):
    the auction divides by reputation + 1, so every task a rival wins makes the next auctions harder, most
    where the rival is low. A rival that fails the tag loses points with the task instead, counted as one
    failure at most (``FAILURE_PENALTY``): at a low reputation the logarithm would make leaving it a task
    worth more than any task pays. Measured in the simulator: without the rival's gain the learner lets
    rivals grow on tasks it could have won, and its last 500 tasks fall behind its first in markets that
    harden."""
    s = settlement
    handed = handed_value(s) if s.rivals else 0.0  # a harder market later
    lost = money_reward(-s.bid_cost_eth - s.evaluation_cost_eth, 0, s.reward_eth) - handed
    out = {0: money_reward(-s.evaluation_cost_eth, 0, s.reward_eth) - handed}
    for action in range(1, ACTIONS):
        fraction, wins = level_outcome(s, action, anchor, taken)
        if wins is None:
            continue
        if not wins:
            out[action] = lost
        elif s.won:
            earned = fraction * s.reward_eth if s.passed else 0.0
            money = earned - s.win_cost_eth - s.bid_cost_eth - s.evaluation_cost_eth
            out[action] = money_reward(money, s.moved, s.reward_eth, s.reputation)
        elif s.fit is not None:
            out[action] = _expected_win(s, fraction, s.fit)
    return out


def level_outcome(s: Settlement, action: int, anchor: float, taken: int) -> tuple[float, bool | None]:
    """The fraction a bid level (1..ACTIONS-1) stands for and whether it would have won the auction; None when
    the settlement does not tell (no price to beat, a level not taken). The ``taken`` level is what was bid
    (not its level's rounding) and won or lost as it did; any other wins under the price to beat (a tie goes to
    the earlier bid: not counted on)."""
    fraction = action_fraction(action, anchor) or 0.0
    if action == taken:
        return (s.bid_fraction if s.bid_fraction is not None else fraction), s.won
    if s.price_to_beat is None:
        return fraction, None
    return fraction, fraction < s.price_to_beat


TYPICAL_MOVE = 5  # reputation points a task moves for a rival that passes well: RIVAL_GAIN's scale


def rival_gain(s: Settlement) -> float:
    """The reputation points (valued by ``reputation_value`` at the rival's reputation) a task handed to the
    best rival costs the agent:
    ``RIVAL_GAIN`` scaled by the rival's own recent moves on the tag (``rival_move`` / ``TYPICAL_MOVE``), never
    more than ``RIVAL_GAIN`` nor than the rival can still gain (``MAX_REPUTATION`` minus its reputation), and
    never less than ``-RIVAL_GAIN``. Why scaled: a rival that fails the tag's tasks loses 10 points with each
    one it wins, and every point it loses raises the prices it sets in every tag; handing it such a task is a
    gain, not a cost. Measured in the simulator (README "Learning"): with the flat gain, a learner that
    outbid a reckless rival on tasks the rival would have failed kept that rival at 90-100 instead of 29."""
    ceiling = RIVAL_GAIN if s.rival_reputation is None else min(RIVAL_GAIN, MAX_REPUTATION - s.rival_reputation)
    if s.rival_move is None:
        return float(ceiling)
    return max(-float(RIVAL_GAIN), min(float(ceiling), RIVAL_GAIN * s.rival_move / TYPICAL_MOVE))


def handed_gain(s: Settlement) -> float:
    """The points the best rival moves with a task handed to it, as the reward counts them: ``rival_gain``,
    a loss never counted as more than one failure (``FAILURE_PENALTY``)."""
    return max(-float(FAILURE_PENALTY), rival_gain(s))


def handed_value(s: Settlement) -> float:
    """What the points the best rival moves with a handed task (``handed_gain``) cost the agent, in units of the
    task's reward: ``reputation_value`` at the rival's reputation, except that a rival's *loss* counts only as far
    as it raises the price the agent can ask, and that price never goes over the reward.

    The rival's points matter through the price to beat, (its bid / (its reputation + 1)) x (the agent's + 1):
    its loss from r to r' raises that price by (r + 1) / (r' + 1), worth the same logarithm as
    ``reputation_value`` while the price stays under the reward. Past the reward it buys nothing, since no bid
    asks more than the whole reward. Why: a reckless rival at 3 that fails a handed task (3 -> 0) counted as a
    gain of 2.7 task rewards, though at 3 its bids were never near the price the agent had to beat. Weak 4
    (simulator): the explorer at 1-5 took every data-analysis task the learner left, Q(abstain) read up to +3.7,
    and the learner gave up a tag it passes a third of the time at the whole reward (its last 500 tasks then
    earned less than its first). A rival's *gain* keeps its full value: a rival that climbs keeps climbing on
    every tag at once, and the price it will set later is not the price it sets now."""
    gain = handed_gain(s)
    full = reputation_value(gain, s.rival_reputation)
    if gain >= 0 or s.price_to_beat is None or s.rival_reputation is None:
        return full
    before = max(0.0, min(MAX_REPUTATION, float(s.rival_reputation)))
    after = before + capped_move(gain, before)
    price = max(s.price_to_beat, 1e-9)
    raised = price * (before + 1) / (after + 1)
    return REPUTATION_SCALE * math.log(min(1.0, price) / min(1.0, raised))


IMPUTED_SCORE_SD = 15.0  # how far a score falls from the fit that predicted it (score points, one sd)


def pass_chance(fit: float) -> float:
    """The chance a task passes when the agent's fit on it is ``fit``: the score normal around the fit
    (``IMPUTED_SCORE_SD``), at or over ``PASS_SCORE``."""
    z = (fit - PASS_SCORE) / IMPUTED_SCORE_SD
    return 0.5 * math.erfc(-z / math.sqrt(2))


def pass_gain(fit: float) -> float:
    """The reputation points a *passed* task moves on average when the agent's fit is ``fit``: the mean score
    over the pass mark (the normal around the fit, ``IMPUTED_SCORE_SD``, cut at ``PASS_SCORE``) in the
    IncentiveEngine's steps, less half a step for its rounding down."""
    z = (fit - PASS_SCORE) / IMPUTED_SCORE_SD
    passing = pass_chance(fit)
    density = math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    above = fit + IMPUTED_SCORE_SD * density / max(passing, 1e-9) - PASS_SCORE  # mean points over the bar, passed
    return max(0.0, above / REPUTATION_STEP - 0.5)


def expected_money(s: Settlement, fraction: float, fit: float) -> float:
    """The money part of ``_expected_win``, per unit of reward: paid on a pass (``pass_chance``), the execution,
    the task's transactions, the bid and the evaluation paid either way."""
    money = pass_chance(fit) * fraction * s.reward_eth - s.win_cost_eth - s.bid_cost_eth - s.evaluation_cost_eth
    return money / max(s.reward_eth, 1e-18)


def _expected_win(s: Settlement, fraction: float, fit: float) -> float:
    """What winning at ``fraction`` would have earned, in expectation over the score the fit predicts (normal
    around the fit, ``IMPUTED_SCORE_SD``): paid on a pass, the execution and the task's transactions paid
    either way, reputation up by the mean pass's points (``pass_gain``) or down by the failure penalty, both
    capped at the agent's reputation, valued at it (``reputation_value``)."""
    passing = pass_chance(fit)
    moved = passing * reputation_value(pass_gain(fit), s.reputation) + (1 - passing) * reputation_value(
        -FAILURE_PENALTY, s.reputation
    )
    return expected_money(s, fraction, fit) + moved
