"""Market features (clearing prices per tag), the anchored bid levels and the hindsight rewards."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import redis

from agentfleet.bidding.context import BidContext
from agentfleet.bidding.market import (
    MIN_MOVES,
    MOVES_KEPT,
    NOBODY,
    SCORES_KEPT,
    Clearing,
    MarketBook,
    RedisMarket,
    features_of,
    merged,
)
from agentfleet.bidding.record import BidRecord
from agentfleet.bidding.reward import (
    IMPUTED_SCORE_SD,
    REPUTATION_SCALE,
    REPUTATION_WEIGHT,
    RIVAL_GAIN,
    TYPICAL_MOVE,
    Outcome,
    Settlement,
    capped_move,
    handed_value,
    hindsight,
    outcome_score,
    reputation_value,
    rival_gain,
    settlement_of,
)
from agentfleet.bidding.state import (
    ACTIONS,
    ANCHOR,
    ANCHOR_CEILING,
    BID_LEVELS,
    DEFAULT_ANCHOR,
    FIT,
    MIN_SCORES,
    REPUTATION,
    STATE_SIZE,
    action_fraction,
    learned_fit,
    nearest_action,
    state_of,
)
from agentfleet.protocol import keys
from agentfleet.protocol.limits import FAILURE_PENALTY
from shell.services import RedisServer

ME = "0x" + "aa" * 20
RIVAL = "0x" + "bb" * 20


def context(**overrides: object) -> BidContext:
    base: dict[str, object] = {
        "task_id": 1,
        "reward_wei": 10**18,
        "tags": ["research"],
        "fit_score": 80,
        "capability_weights": {"research": 80},
        "reputation": 49,
    }
    return BidContext.model_validate({**base, **overrides})


def test_an_agents_own_wins_tell_it_the_runner_up_price() -> None:
    entries = [
        Clearing(3, ME, weighted=0.010, runner_up=0.014, bidders=3),  # I won: the others were at 0.014
        Clearing(2, RIVAL, weighted=0.012, runner_up=0.013, bidders=2),
        Clearing(1, ME.upper().replace("0X", "0x"), weighted=0.011, runner_up=NOBODY, bidders=1),
    ]
    mine = features_of(entries, ME)
    assert mine.clearing == [0.014, 0.012, NOBODY] and mine.bidders == pytest.approx(2.0)
    assert features_of(entries, RIVAL).clearing == [0.010, 0.013, 0.011]


def test_the_state_anchors_bids_on_the_price_to_beat_at_the_agents_reputation() -> None:
    assert state_of(context()).anchor == DEFAULT_ANCHOR and state_of(context()).known == 0  # no market yet
    book = MarketBook()
    for task in range(1, 8):
        book.record("research", Clearing(task, RIVAL, weighted=0.012, runner_up=0.02, bidders=4))
    state = state_of(context(market=book.features(["research"], ME)))
    assert state.anchor == pytest.approx(0.012 * 50) and state.known == 1 and state.bidders == 4
    ahead = state_of(context(reputation=99, market=book.features(["research"], ME)))  # rivals far behind
    assert ahead.anchor == pytest.approx(1.2) and ahead.vector()[ANCHOR] == pytest.approx(1.2)  # above the reward
    assert {action_fraction(a, ahead.anchor) for a in range(BID_LEVELS.index(0.86) + 1, ACTIONS)} == {1.0}  # no more
    alone = [Clearing(1, ME, weighted=0.01, runner_up=NOBODY, bidders=1)]
    assert state_of(context(reputation=99, market=features_of(alone, ME))).anchor == ANCHOR_CEILING  # nobody to beat
    assert book.features(["coding"], ME).clearing == []
    fractions = [action_fraction(a, state.anchor) for a in range(1, ACTIONS)]
    assert fractions == sorted(fractions) and all(f is not None and 0 < f <= 1 for f in fractions)
    assert action_fraction(0, state.anchor) is None
    for action in range(1, ACTIONS):
        assert nearest_action(action_fraction(action, 0.5) or 0, 0.5) == action
    with pytest.raises(ValueError):
        action_fraction(ACTIONS)


def test_prices_are_reweighted_at_their_bidders_reputation_now() -> None:
    """A rival that climbed from 50 to 100 since it set a price now beats that price at half of it."""
    third = "0x" + "cc" * 20
    entries = [  # (task, winner, weighted, runner-up, bids, winner's reputation, runner-up, its reputation)
        Clearing(3, RIVAL, 0.7 / 51, 0.9 / 31, 2, 50, third, 30),
        Clearing(2, ME, 0.5 / 100, 0.8 / 51, 2, 99, RIVAL, 50),
        Clearing(1, RIVAL, weighted=0.6 / 51, runner_up=NOBODY, bidders=1),  # an older fleet's entry: as it was
    ]
    now = {RIVAL: 100, third: 30, ME: 99}
    assert features_of(entries, ME, now).clearing == pytest.approx([0.7 / 101, 0.8 / 101, 0.6 / 51])
    assert features_of(entries, ME).clearing == pytest.approx([0.7 / 51, 0.8 / 51, 0.6 / 51])  # none known
    assert features_of(entries, RIVAL, now).clearing == pytest.approx([0.9 / 31, 0.5 / 100, NOBODY])
    lone = [Clearing(4, ME, weighted=0.5 / 100, runner_up=NOBODY, bidders=1, winner_reputation=99)]
    assert features_of(lone, ME, now).clearing == [NOBODY]  # nobody to beat stays nobody
    fallen = {RIVAL: 20, third: 30, ME: 99}  # a bidder that lost reputation since: its price as it was (the
    # next bid, the one to beat now, was never recorded)
    assert features_of(entries, ME, fallen).clearing == pytest.approx([0.7 / 51, 0.8 / 51, 0.6 / 51])


def test_a_multi_tag_task_merges_its_tags_without_counting_a_task_twice() -> None:
    a = [Clearing(5, RIVAL, 0.1, 0.2, 2), Clearing(3, RIVAL, 0.3, 0.4, 2)]
    b = [Clearing(5, RIVAL, 0.1, 0.2, 2), Clearing(4, RIVAL, 0.5, 0.6, 2)]
    assert [c.task_id for c in merged([a, b])] == [5, 3, 4]


def test_the_redis_market_keeps_the_newest_and_skips_what_it_cannot_read(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    market = RedisMarket(client)
    for task in range(1, 31):
        market.record(["research", "writing"], Clearing(task, RIVAL, task / 1000, 1.0, 2))
    client.lpush(keys.market("research"), "not json", '{"task_id": 1}')
    entries = market.read(["research", "writing", "nothing"])
    assert [len(e) for e in entries] == [18, 20, 0]  # capped at 20 per tag, the two bad entries skipped
    assert entries[1][0].task_id == 30  # newest first
    assert market.features(["research"], ME).clearing[0] == pytest.approx(0.030)
    # A rival's reputation now (the listener's) re-weights what it set at the reputation it had then.
    market.record(["coding"], Clearing(31, RIVAL, 0.7 / 51, NOBODY, 1, winner_reputation=50))
    assert market.features(["coding"], ME).clearing == pytest.approx([0.7 / 51])  # no reputation known yet
    market.remember_reputation(RIVAL.upper().replace("0X", "0x"), 100)
    assert market.reputations([RIVAL, ME, ""]) == {RIVAL: 100}
    assert market.features(["coding"], ME).clearing == pytest.approx([0.7 / 101])
    assert market.read(["coding"])[0][0].winner_reputation == 50  # the entry keeps what it was weighted with


def test_a_rivals_recent_moves_are_kept_per_tag_and_averaged_once_enough_are_seen(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    market, book = RedisMarket(client), MarketBook()
    for memory in (market, book):
        for _ in range(MIN_MOVES - 1):
            memory.record_move(["research"], RIVAL, -10)
        assert memory.expected_move(["research"], RIVAL) is None  # too few to say anything
        memory.record_move(["research"], RIVAL.upper().replace("0X", "0x"), 5)  # the address's case does not matter
        assert memory.expected_move(["research"], RIVAL) == pytest.approx((2 * -10 + 5) / 3)
        assert memory.expected_move(["coding"], RIVAL) is None and memory.expected_move(["research"], ME) is None
        for _ in range(MOVES_KEPT):
            memory.record_move(["coding", "research"], RIVAL, 4)
        assert memory.expected_move(["research"], RIVAL) == pytest.approx(4)  # the newest MOVES_KEPT only
        assert memory.expected_move(["coding", "writing"], RIVAL) == pytest.approx(4)
    client.lpush(keys.moves("writing", RIVAL), "garbage", "7", "7", "7")
    assert market.expected_move(["writing"], RIVAL) == pytest.approx(7)  # the unreadable entry is skipped


def test_a_task_handed_to_a_rival_costs_what_that_rival_gains_with_it() -> None:
    lost = settlement(won=False, passed=False, moved=0, price_to_beat=0.55, rivals=True, rival_reputation=50)
    assert rival_gain(lost) == RIVAL_GAIN  # its moves unknown: the flat gain
    assert rival_gain(replace(lost, rival_move=TYPICAL_MOVE / 2)) == pytest.approx(RIVAL_GAIN / 2)
    assert rival_gain(replace(lost, rival_move=9.0)) == RIVAL_GAIN  # never more than the flat gain
    assert rival_gain(replace(lost, rival_move=9.0, rival_reputation=90)) == 10  # nor than its headroom
    assert rival_gain(replace(lost, rival_move=-10.0)) == -RIVAL_GAIN  # a rival that fails the tag sinks with it
    anchor, taken = 0.6, nearest_action(0.7, 0.6)
    flat = hindsight(lost, anchor, taken)
    reckless = hindsight(replace(lost, rival_move=-10.0), anchor, taken)
    # leaving it the task pays: its loss counted as one failure at most, from its 50
    assert reckless[0] == pytest.approx(-0.002 - reputation_value(-FAILURE_PENALTY, 50))
    assert reckless[0] > flat[0] and reckless[taken] > flat[taken]
    alone = replace(lost, rivals=False, rival_move=-10.0)
    assert hindsight(alone, anchor, taken)[0] == pytest.approx(-0.002)  # nobody to hand it to: no move counts


def test_a_reckless_rivals_loss_counts_only_as_far_as_it_raises_the_price_the_agent_can_ask() -> None:
    reckless = settlement(won=False, passed=False, moved=0, rivals=True, rival_move=-10.0)
    far = replace(reckless, price_to_beat=3.0, rival_reputation=3)  # its bids, divided by 4, never near the agent's
    assert reputation_value(-FAILURE_PENALTY, 3) < -2.5  # at its own reputation the loss looks huge
    assert handed_value(far) == 0.0  # but the agent could already ask the whole reward
    assert hindsight(far, 1.0, 0)[0] == pytest.approx(-0.002)  # leaving it the task gains nothing
    near = replace(reckless, price_to_beat=0.55, rival_reputation=50)  # 50 -> 40: the price rises to 0.68
    assert handed_value(near) == pytest.approx(reputation_value(-FAILURE_PENALTY, 50))  # under the reward: in full
    across = replace(reckless, price_to_beat=0.9, rival_reputation=50)  # 0.9 -> 1.15: only up to the reward counts
    assert handed_value(across) == pytest.approx(REPUTATION_SCALE * math.log(0.9))
    assert reputation_value(-FAILURE_PENALTY, 50) < handed_value(across) < 0
    rising = replace(far, rival_move=5.0)  # a rival's gain keeps its full value: it climbs on every tag at once
    assert handed_value(rising) == pytest.approx(reputation_value(RIVAL_GAIN, 3))
    assert handed_value(replace(far, price_to_beat=None)) == pytest.approx(reputation_value(-3, 3))  # unknown price


def test_an_outcomes_score_is_the_task_completed_score_of_a_won_or_failed_task() -> None:
    def outcome(kind: str, score: object = None, name: str = "TaskCompleted") -> Outcome:
        event = {"name": name, "args": {"taskId": 1, "score": score}} if score is not None else {"name": name}
        return Outcome(agent="0x" + "11" * 20, task_id=1, outcome=kind, event=event)  # type: ignore[arg-type]

    assert outcome_score(outcome("won", 83)) == 83 and outcome_score(outcome("failed", 12)) == 12
    assert outcome_score(outcome("failed", name="TaskExpired")) is None  # nothing delivered: no score
    assert outcome_score(outcome("lost", 83)) is None
    for bad in (101, -1, True, "83", 83.0):
        assert outcome_score(outcome("won", bad)) is None


def test_an_agents_own_scores_are_kept_per_tag_and_raise_a_fit_that_froze_low(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    market, book = RedisMarket(client), MarketBook()
    for memory in (market, book):
        for score in range(30):
            memory.record_score(["research"], ME, 40 + score)
        memory.record_score(["research", "coding"], ME.upper().replace("0X", "0x"), 90)
        assert memory.scores(["research"], ME) == [90.0, *[float(40 + s) for s in range(29, 29 - SCORES_KEPT + 1, -1)]]
        assert memory.scores(["coding"], ME) == [90.0] and memory.scores(["coding"], RIVAL) == []
        assert memory.features(["coding"], ME).scores == [90.0]  # read with the market, for the agent asking
    client.lpush(keys.scores("writing", ME), "garbage", "101", "55")
    assert market.scores(["writing"], ME) == [55.0]  # unreadable and impossible entries are skipped

    def ctx(fit: float, scores: list[float]) -> BidContext:
        features = features_of([], ME, scores=scores)
        return BidContext(
            task_id=1,
            reward_wei=10**18,
            tags=["research"],
            fit_score=fit,
            capability_weights={},
            reputation=100,
            market=features,
        )

    record = [45.0, 35.0, 50.0, 48.0, 47.0]  # mean 45: a fit frozen at 35 after a few low scores is raised to it
    assert learned_fit(ctx(35, record)) == pytest.approx(45)
    assert state_of(ctx(35, record)).fit == pytest.approx(45)  # the state the model sees and the trainer records
    assert learned_fit(ctx(60, record)) == 60  # never lowered: a fit too high corrects itself as the agent bids
    assert learned_fit(ctx(35, record[: MIN_SCORES - 1])) == 35  # too few scores to say anything
    assert learned_fit(ctx(35, [])) == 35 and learned_fit(ctx(35, [100.0] * MIN_SCORES)) == 100


def settlement(**overrides: object) -> Settlement:
    base: dict[str, object] = {
        "reward_eth": 1.0,
        "price_to_beat": 0.6,
        "won": True,
        "passed": True,
        "moved": 6,
        "bid_cost_eth": 0.001,
        "win_cost_eth": 0.1,
        "evaluation_cost_eth": 0.002,
    }
    return Settlement(**{**base, **overrides})  # type: ignore[arg-type]


def test_hindsight_tells_every_level_a_won_auction_decides() -> None:
    anchor = 0.6
    taken = nearest_action(0.5, anchor)
    rewards = hindsight(settlement(), anchor, taken)
    assert set(rewards) == set(range(ACTIONS))  # won: every level is known
    for action, reward in rewards.items():
        fraction = action_fraction(action, anchor)
        if fraction is None:
            assert reward == pytest.approx(-0.002)  # abstaining still paid the evaluation
        elif fraction < 0.6:  # a tie goes to the earlier bid: not counted as a win
            assert reward == pytest.approx(fraction - 0.1 - 0.001 - 0.002 + REPUTATION_WEIGHT * 6)  # same task, score
        else:
            assert reward == pytest.approx(-0.003)  # would have lost: the bid's gas and the evaluation
    best = max(range(1, ACTIONS), key=lambda a: rewards[a])
    assert action_fraction(best, anchor) == pytest.approx(0.995 * 0.6)  # the highest level that surely won


def test_hindsight_after_a_loss_or_without_bids_claims_nothing_it_cannot_know() -> None:
    anchor = 0.6
    taken = nearest_action(0.7, anchor)
    rewards = hindsight(settlement(won=False, passed=False, moved=0, price_to_beat=0.55), anchor, taken)
    for action in range(1, ACTIONS):
        fraction = action_fraction(action, anchor) or 0
        assert (action in rewards) == (fraction > 0.55 or action == taken)  # a lower level's score is unknown
    assert hindsight(settlement(price_to_beat=None), anchor, taken).keys() == {0, taken}
    handed = hindsight(settlement(won=False, passed=False, moved=0, price_to_beat=0.55, rivals=True), anchor, taken)
    assert handed[0] == pytest.approx(-0.002 - REPUTATION_WEIGHT * RIVAL_GAIN)  # the rival's gain costs too
    assert handed[taken] == pytest.approx(-0.003 - REPUTATION_WEIGHT * RIVAL_GAIN)
    lost_to = {  # what the rival can still gain: nothing at the cap, its headroom near it
        reputation: hindsight(
            settlement(won=False, passed=False, moved=0, price_to_beat=0.55, rivals=True, rival_reputation=reputation),
            anchor,
            taken,
        )[0]
        for reputation in (100, 97, 50)
    }
    # valued at the rival's reputation: 3 points from 97 are worth less than 3 flat, 30 from 50 more
    assert lost_to == pytest.approx(
        {100: -0.002, 97: -0.002 - reputation_value(3, 97), 50: -0.002 - reputation_value(RIVAL_GAIN, 50)}
    )
    assert lost_to[97] > -0.002 - REPUTATION_WEIGHT * 3 and lost_to[50] < handed[0]
    failed = hindsight(settlement(passed=False, moved=-10), anchor, taken)
    assert failed[taken] == pytest.approx(-0.1 - 0.001 - 0.002 - REPUTATION_WEIGHT * 10)  # nothing paid, the penalty


def test_after_a_loss_the_levels_that_would_have_won_are_valued_at_the_score_the_fit_expects() -> None:
    anchor = 0.6
    taken = nearest_action(0.7, anchor)
    lost = settlement(won=False, passed=False, moved=0, price_to_beat=0.55, fit=50.0)
    rewards = hindsight(lost, anchor, taken)
    assert set(rewards) == set(range(ACTIONS))  # with the fit, every level is valued
    density = 1 / math.sqrt(2 * math.pi)  # fit 50: a pass is a coin toss, a mean pass is sd x 0.8 over the bar
    moved = 0.5 * (IMPUTED_SCORE_SD * density / 0.5 / 5 - 0.5) - 0.5 * 10
    for action in range(1, ACTIONS):
        fraction = action_fraction(action, anchor) or 0
        if fraction < 0.55 and action != taken:
            expected = 0.5 * fraction - 0.1 - 0.001 - 0.002 + REPUTATION_WEIGHT * moved
            assert rewards[action] == pytest.approx(expected)
        else:
            assert rewards[action] == pytest.approx(-0.003)  # lost (the bid placed) or would have lost
    sure = hindsight(replace(lost, fit=95.0), anchor, taken)
    unsure = hindsight(replace(lost, fit=30.0), anchor, taken)
    low = nearest_action(0.4, anchor)
    assert sure[low] > rewards[low] > unsure[low]  # the surer the pass, the more winning is worth
    assert unsure[low] < unsure[0]  # a task it would likely fail: abstaining is worth more


def test_reputation_moves_are_valued_only_as_far_as_the_0_to_100_bounds_let_them_move() -> None:
    assert capped_move(8, 95) == 5 and capped_move(-10, 4) == -4 and capped_move(8, None) == 8
    anchor = 0.6
    taken = nearest_action(0.7, anchor)
    low = nearest_action(0.4, anchor)
    lost = settlement(won=False, passed=False, moved=0, price_to_beat=0.55, fit=90.0)
    uncapped, at_cap = hindsight(lost, anchor, taken)[low], hindsight(replace(lost, reputation=100.0), anchor, taken)
    assert at_cap[low] < uncapped  # at 100 a likely pass gains nothing more: the imputed win is worth less
    passing = 0.5 * math.erfc(-(90 - 50) / IMPUTED_SCORE_SD / math.sqrt(2))  # paid, no points, a failure's 10
    expected = passing * (action_fraction(low, anchor) or 0) - 0.103 - REPUTATION_WEIGHT * 10 * (1 - passing)
    assert at_cap[low] == pytest.approx(expected)
    risky = replace(lost, fit=20.0)
    near_zero = hindsight(replace(risky, reputation=4.0), anchor, taken)[low]
    at_top = hindsight(replace(risky, reputation=100.0), anchor, taken)[low]
    assert near_zero < at_top  # at 4 a failure takes only 4 points, but the last 4: a likely failure costs more
    state = [0.0] * STATE_SIZE
    state[FIT] = 0.9

    def moved_at(reputation: float) -> float:  # the fleet's settlement of a pass scored 90 (8 points)
        state[REPUTATION] = reputation
        record = BidRecord(state=state, action=taken, reward_wei=10**18, amount_wei=4 * 10**17)
        event = {"args": {"score": 90}}
        message = Outcome.model_validate({"agent": ME, "task_id": 1, "outcome": "won", "event": event})
        return settlement_of(message, record).moved

    assert moved_at(1.0) == 0 and moved_at(0.6) == 8 and moved_at(0.97) == pytest.approx(3)


def test_a_reputation_point_is_worth_more_the_scarcer_reputation_is() -> None:
    """The auction divides a bid by reputation + 1: a point at 9 moves the price to beat ten times as much as
    one at 99, and the reward values it so; a failure at the cap costs what the flat weight says."""
    assert reputation_value(-FAILURE_PENALTY, 100) == pytest.approx(-REPUTATION_WEIGHT * FAILURE_PENALTY)
    costs = [-reputation_value(-FAILURE_PENALTY, r) for r in (100, 80, 50, 20, 10)]
    assert costs == sorted(costs) and costs[2] == pytest.approx(0.42, abs=0.01)  # dearer the lower it starts
    assert reputation_value(1, 9) == pytest.approx(10 * reputation_value(1, 99), rel=0.06)
    assert reputation_value(5, 98) == reputation_value(2, 98) > 0  # bounded at 100: 2 points is all there is
    assert reputation_value(-10, 4) == reputation_value(-4, 4) < 0  # and at 0
    assert reputation_value(8, None) == pytest.approx(REPUTATION_WEIGHT * 8)  # unknown: flat
    for r in (0, 13, 50, 93):  # a move and its undoing cancel out: no free points in a round trip
        assert reputation_value(7, r) + reputation_value(-7, r + 7) == pytest.approx(0, abs=1e-12)


def test_the_rival_to_beat_is_the_lowest_weighted_other_bid() -> None:
    from trainer.clearing import Auction

    auction = Auction(
        1, 10**18, ["research"], {"0xa": 0.01, "0xb": 0.005, "0xc": 0.004}, {"0xa": 50, "0xb": 80, "0xc": 20}
    )
    assert auction.best_rival_reputation("0xC") == 80  # its own bid is not a rival's
    assert auction.best_rival("0xC") == "0xb" and auction.best_rival("0xb") == "0xc"
    assert auction.best_rival_reputation("0xa") == 20
    assert Auction(2, 10**18, [], {"0xa": 0.01}, {"0xa": 50}).best_rival_reputation("0xa") is None
    assert Auction(2, 10**18, [], {"0xa": 0.01}, {"0xa": 50}).best_rival("0xa") is None
