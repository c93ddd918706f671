"""What the market pays, per tag: recent clearing prices and bidder counts, the learner's view of its rivals.

Why: in a first-price auction the bid that earns most is the highest one that still wins, and that depends
on what the others bid, which no agent's own state says. Every finalized auction tells it: the winner, the
price (``TaskAssigned``/``AuctionFinalized`` amount) and the number of bids (``AuctionFinalized.bidCount``).
The auction ranks ``amount / (reputation + 1)``, so a clearing price is kept *weighted*: price / reward /
(winner's reputation + 1). An agent with reputation r then beats that winner with any fraction up to
``weighted x (r + 1)``: the *price to beat*, the anchor of the RL bid levels (:mod:`agentfleet.bidding.state`).
For the winner itself the price to beat was the runner-up's (the best other bid, from ``BidPlaced`` or the
sealed bid book): kept too, so an agent that wins every auction of a tag still knows how far above its own
bid the others were (winners only would leave it blind, and a learner that wins at a low price never
finds out it could ask more).

One shape for both worlds: the trainer appends a :class:`Clearing` per tag to a capped Redis list
(:class:`RedisMarket`), the simulator to its in-memory :class:`MarketBook`; both turn entries into
:class:`MarketFeatures` with :func:`features_of`, which the ``BidContext`` carries into ``state_of``.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

import redis
from pydantic import BaseModel, Field
from redis.client import Pipeline

from agentfleet.protocol import keys

log = logging.getLogger(__name__)

KEPT = 20  # clearings kept per tag: the features' window
MOVES_KEPT = 20  # reputation moves kept per agent and tag: what a rival's next task is expected to move
MIN_MOVES = 3  # moves seen before their mean says anything (fewer: unknown)
SCORES_KEPT = 20  # the agent's own scores kept per tag: what its fit is checked against (``state.learned_fit``)


@dataclass(frozen=True)
class Clearing:
    """One finalized auction of a tag."""

    task_id: int
    winner: str  # lowercase address (or a simulated agent's name)
    weighted: float  # price / reward / (winner's reputation + 1): what the auction ranks, per unit of reward
    runner_up: float  # the same for the best other bid; NOBODY when the winner was alone
    bidders: int  # bids the auction had
    winner_reputation: int = -1  # the reputation ``weighted`` divided by (-1: unknown, an entry of an older fleet)
    runner_up_agent: str = ""  # who placed the best other bid ("": nobody, or unknown)
    runner_up_reputation: int = -1  # the reputation ``runner_up`` divided by


NOBODY = 1.0  # a runner-up no bid can lose to: the reward (fraction 1) at reputation 0


class MarketFeatures(BaseModel):
    """The market of a task's tags as an agent sees it at bid time."""

    clearing: list[float] = Field(default_factory=list, description="weighted prices the agent had to beat")
    bidders: float = Field(default=0.0, ge=0, description="mean bids per recent auction")
    scores: list[float] = Field(
        default_factory=list, description="the agent's own recent scores on the tags (newest first, per tag)"
    )


def features_of(
    entries: Iterable[Clearing],
    agent: str,
    reputations: Mapping[str, int] | None = None,
    scores: Iterable[float] = (),
) -> MarketFeatures:
    """Features from a tag's clearings (newest first): per auction the best bid of the *others* (the winner's,
    or the runner-up's where ``agent`` won), and the mean number of bids; ``scores`` are the agent's own recent
    scores on the tags, carried as they are (``state.learned_fit`` reads them).

    With ``reputations`` (lower-case agent -> reputation now), each price is re-weighted at its bidder's
    reputation now. Why: the auction divides by the reputation a bidder has when it bids, and a rival's
    reputation moves with every task it wins, in every tag at once: one that won ten tasks in a row went from
    50 to 100 and nearly halved every price to beat, while the prices kept at its old reputation still said
    the old ones (measured: a learner chased it down for ten lost tasks and handed it the market for good).
    Only ever lowered: a bidder whose reputation fell since would now bid higher, but the bid that then came
    next (the one to beat now) was never recorded, so the price as it was is the best estimate left. Raised,
    a runner-up fallen from 45 to 25 said 0.024 where the rival now to beat, third then and at 77 now, was at
    0.009: the learner kept asking the whole reward and lost a run of tasks to it (README "Learning")."""
    me = agent.lower()
    now = reputations or {}
    seen = list(entries)[:KEPT]
    clearing = []
    for c in seen:
        price, who, then = (
            (c.runner_up, c.runner_up_agent, c.runner_up_reputation)
            if c.winner.lower() == me
            else (c.weighted, c.winner, c.winner_reputation)
        )
        current = now.get(who.lower()) if who else None
        if current is not None and then >= 0 and price < NOBODY:
            price = price * min(1.0, (then + 1) / (current + 1))  # lowered, never raised: see the docstring
        clearing.append(price)
    bidders = sum(c.bidders for c in seen) / len(seen) if seen else 0.0
    return MarketFeatures(clearing=clearing, bidders=bidders, scores=list(scores))


def merged(per_tag: Iterable[list[Clearing]]) -> list[Clearing]:
    """A multi-tag task's clearings: each tag's newest first, interleaved, one entry per task."""
    lists = [list(entries) for entries in per_tag]
    out, seen = [], set()
    for rank in range(max((len(e) for e in lists), default=0)):
        for entries in lists:
            if rank < len(entries) and entries[rank].task_id not in seen:
                seen.add(entries[rank].task_id)
                out.append(entries[rank])
    return out


def mean_move(per_tag: Iterable[Iterable[int]]) -> float | None:
    """The reputation an agent's next task of these tags is expected to move: the mean of the moves its last
    completed tasks of the tags made (``MOVES_KEPT`` per tag); None under ``MIN_MOVES`` (unknown). Why: a task
    handed to a rival costs the reputation the rival gains with it (``reward.rival_gain``), and what a rival
    gains depends on how well it does the tag's tasks: a reckless bidder fails them and loses 10 points each."""
    moves = [move for tag in per_tag for move in tag]
    return sum(moves) / len(moves) if len(moves) >= MIN_MOVES else None


class MarketBook:
    """The simulator's market memory: per tag, the newest clearings first; per agent and tag, its recent moves
    and scores."""

    def __init__(self) -> None:
        self._tags: dict[str, deque[Clearing]] = {}
        self._moves: dict[tuple[str, str], deque[int]] = {}
        self._scores: dict[tuple[str, str], deque[float]] = {}

    def record(self, tag: str, clearing: Clearing) -> None:
        self._tags.setdefault(tag, deque(maxlen=KEPT)).appendleft(clearing)

    def features(self, tags: list[str], agent: str, reputations: Mapping[str, int] | None = None) -> MarketFeatures:
        clearings = merged(list(self._tags.get(tag, ())) for tag in tags)
        return features_of(clearings, agent, reputations, self.scores(tags, agent))

    def record_move(self, tags: list[str], agent: str, moved: int) -> None:
        for tag in tags:
            self._moves.setdefault((tag, agent.lower()), deque(maxlen=MOVES_KEPT)).appendleft(moved)

    def expected_move(self, tags: list[str], agent: str) -> float | None:
        return mean_move(self._moves.get((tag, agent.lower()), ()) for tag in tags)

    def record_score(self, tags: list[str], agent: str, score: float) -> None:
        for tag in tags:
            self._scores.setdefault((tag, agent.lower()), deque(maxlen=SCORES_KEPT)).appendleft(float(score))

    def scores(self, tags: list[str], agent: str) -> list[float]:
        return [s for tag in tags for s in self._scores.get((tag, agent.lower()), ())]


class RedisMarket:
    """The fleet's market memory: one capped list per tag (``keys.market(tag)``), newest first, written by the
    trainer from settled auctions, read by the workers at bid time (one LRANGE per tag, pipelined)."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def _push(self, names: list[str], value: str | int, kept: int, pipe: Pipeline | None) -> None:
        """``value`` onto each capped list (newest first, the newest ``kept`` stay), in ``pipe`` when given."""
        target = pipe if pipe is not None else self.redis.pipeline()
        for name in names:
            target.lpush(name, value)
            target.ltrim(name, 0, kept - 1)
        if pipe is None:
            target.execute()

    def _lists(self, names: list[str], kept: int) -> list[list[bytes]]:
        """The newest ``kept`` entries of each list (one LRANGE per list, pipelined)."""
        pipe = self.redis.pipeline()
        for name in names:
            pipe.lrange(name, 0, kept - 1)
        return pipe.execute()

    def record(self, tags: list[str], clearing: Clearing, *, pipe: Pipeline | None = None) -> None:
        body = json.dumps(asdict(clearing), separators=(",", ":"))
        self._push([keys.market(tag) for tag in tags], body, KEPT, pipe)

    def read(self, tags: list[str]) -> list[list[Clearing]]:
        rows = self._lists([keys.market(tag) for tag in tags], KEPT)
        return [[entry for raw in entries if (entry := _parsed(raw)) is not None] for entries in rows]

    def features(self, tags: list[str], agent: str) -> MarketFeatures:
        entries = self.read(tags)
        return features_of(merged(entries), agent, self.reputations(bidders_of(entries)), self.scores(tags, agent))

    def record_move(self, tags: list[str], agent: str, moved: int, *, pipe: Pipeline | None = None) -> None:
        """The reputation a completed task of ``tags`` moved for ``agent`` (the trainer, from TaskCompleted or
        TaskExpired once final): any agent's, since any agent may be the rival a task is handed to."""
        self._push([keys.moves(tag, agent) for tag in tags], int(moved), MOVES_KEPT, pipe)

    def expected_move(self, tags: list[str], agent: str) -> float | None:
        """``mean_move`` of ``agent`` on ``tags`` (one LRANGE per tag, pipelined); an unreadable entry is skipped."""
        rows = self._lists([keys.moves(tag, agent) for tag in tags], MOVES_KEPT)
        return mean_move([int(v) for v in entries if _is_int(v)] for entries in rows)

    def record_score(self, tags: list[str], agent: str, score: int, *, pipe: Pipeline | None = None) -> None:
        """The score a completed task of ``tags`` got (the trainer, from TaskCompleted once final): what the agent's
        fit on those tags is checked against when it next bids (``state.learned_fit``)."""
        self._push([keys.scores(tag, agent) for tag in tags], int(score), SCORES_KEPT, pipe)

    def scores(self, tags: list[str], agent: str) -> list[float]:
        """``agent``'s recent scores on ``tags``, newest first per tag (one LRANGE per tag, pipelined); an
        unreadable entry is skipped."""
        rows = self._lists([keys.scores(tag, agent) for tag in tags], SCORES_KEPT)
        return [float(v) for entries in rows for v in entries if _is_int(v) and 0 <= int(v) <= 100]

    def remember_reputation(self, agent: str, reputation: int, *, pipe: Pipeline | None = None) -> None:
        """An agent's reputation now (the listener, on ``ReputationChanged``): any agent's, rivals outside the
        fleet included, since every price they set is re-weighted with it."""
        (pipe if pipe is not None else self.redis).hset(keys.REPUTATIONS, agent.lower(), int(reputation))

    def reputations(self, agents: Iterable[str]) -> dict[str, int]:
        """The reputations now of ``agents`` that the listener has seen (one HMGET)."""
        names = sorted({a.lower() for a in agents if a})
        if not names:
            return {}
        values = self.redis.hmget(keys.REPUTATIONS, names)
        return {name: int(value) for name, value in zip(names, values, strict=True) if value is not None}


def bidders_of(entries: Iterable[Iterable[Clearing]]) -> set[str]:
    """Every agent whose price the clearings keep (winners and runners-up): whose reputation re-weights them."""
    return {name.lower() for tag in entries for c in tag for name in (c.winner, c.runner_up_agent) if name}


def _is_int(raw: bytes | str) -> bool:
    try:
        int(raw)
        return True
    except ValueError:
        log.warning("unreadable entry skipped: %r", raw)
        return False


def _parsed(raw: bytes | str) -> Clearing | None:
    """One stored clearing; a malformed entry is skipped (and logged), it never fails a bid."""
    try:
        data = json.loads(raw)
        return Clearing(
            int(data["task_id"]),
            str(data["winner"]),
            float(data["weighted"]),
            float(data["runner_up"]),
            int(data["bidders"]),
            winner_reputation=int(data.get("winner_reputation", -1)),  # absent from an older fleet's entries
            runner_up_agent=str(data.get("runner_up_agent", "")),
            runner_up_reputation=int(data.get("runner_up_reputation", -1)),
        )
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("market entry skipped: %s", exc)
        return None
