"""The trainer worker: ``celery -A workers worker -Q training -P solo`` (solo: torch never forks).

``trainer.tasks.record_outcome`` validates an outcome, waits until its event is ``training_confirmations``
blocks deep and still canonical (a reorg must not teach the agent something that never happened), adds the
transition to the agent's replay memory, trains a few steps and writes the model atomically. Learning once:
the outcome id (event + agent) is stored in the model file itself, so a trainer killed between the model
write and the Redis marker does not learn twice when the message comes back (acks_late). The done marker also
settles the message's letter in the trainer's inbox (``agentfleet.protocol.inbox``): a message lost on its way
in is sent again by the reconciler, one already learned is not.

Several trainers (``AGENTFLEET_TRAINER_SHARDS`` > 1, ``trainer.shards``): a trainer learns only the agents of
the shards it holds a lease on; an outcome of another shard (hand-sent to ``training``, or in flight while a
shard changes hands) is forwarded to that shard's queue, where its holder learns it. With one shard (the
default) there are no leases and nothing is forwarded.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import redis
from celery import Task
from celery.signals import worker_ready, worker_shutdown
from pydantic import ValidationError

from agentfleet import task_trace  # noqa: F401  (writes each run into the market task's trace)
from agentfleet import worker_metrics as metrics
from agentfleet.bidding.market import RedisMarket
from agentfleet.bidding.record import BidRecord, load_bid_state, record_recent
from agentfleet.bidding.reward import Outcome, hindsight, outcome_move, outcome_score, settlement_of
from agentfleet.bidding.state import ANCHOR, REPUTATION
from agentfleet.chain.market import tag_text
from agentfleet.chain.session import capability_weights
from agentfleet.profiles import AgentLearningConfig
from agentfleet.protocol import keys, routing
from agentfleet.protocol.app import app
from agentfleet.protocol.inbox import TrainingInbox, clearing_done_id, outcome_done_id
from agentfleet.protocol.status import AuctionMode
from agentfleet.retry import RETRY, TRANSIENT
from agentfleet.runtime import Runtime, runtime
from agentfleet.settings import get_settings
from agentfleet.trace import TaskTrace
from trainer.clearing import auction_of, reputation_of
from trainer.learners import Learners, Lesson, NotOwner, stop_hook
from trainer.shards import ShardClaims, consumes, in_process_pool, start_in_worker

if TYPE_CHECKING:  # torch: imported only where the trainer trains, not in every agent worker
    from trainer.integration import LearningIntegration

log = logging.getLogger(__name__)


@app.task(name=routing.RECORD_OUTCOME, bind=True, **RETRY)
def record_outcome(
    self: Task, agent: str, task_id: int, outcome: str, event: dict[str, Any] | None = None
) -> dict[str, Any]:
    try:
        parsed = Outcome.model_validate({"agent": agent, "task_id": task_id, "outcome": outcome, "event": event})
    except ValidationError as exc:
        raise ValueError(f"invalid outcome: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None
    rt = runtime()
    shards = _CLAIMS.shards if _CLAIMS is not None else rt.settings.trainer_shards
    if shards > 1 and (_CLAIMS is None or _CLAIMS.token(parsed.agent) is None):
        return _hand_on(self, shards, agent=agent, task_id=task_id, outcome=outcome, event=event)
    outcome_id = outcome_done_id(parsed.task_id, parsed.agent)
    done_key = keys.trainer_done(outcome_id)
    if rt.redis.exists(done_key):
        TrainingInbox(rt.redis).settle(outcome_id)
        return {"status": "duplicate"}
    settled = _settled(rt, parsed)
    if settled is not None:
        if settled == "reverted":
            TrainingInbox(rt.redis).settle(outcome_id)  # the listener sends it again if it is re-included
            return {"status": "reverted"}
        raise self.retry(countdown=settled, max_retries=60)  # not deep enough yet: learn from final facts only
    try:
        record = load_bid_state(rt.redis, parsed.task_id, parsed.agent)
    except ValueError as exc:  # a record of another shape (e.g. written before an upgrade): nothing to learn
        log.warning("%s; the outcome counts for the win rate only", exc)
        record = None
    if record is None or record.reconstructed:
        _finish(rt, parsed, outcome_id, "no-state")
        return {"status": "no_bid_state"}  # no state the agent saw: nothing to learn, the win rate still counts

    import torch

    torch.set_num_threads(1)
    chain_agent = rt.session.registry.get_agent(parsed.agent)  # one read: weights and reputation
    learners = _learners(rt)
    try:
        learning = learners.get(parsed.agent, lambda: _learning(rt, parsed.agent, chain_agent))
    except NotOwner:  # the shard's lease lapsed since the check above
        return _hand_on(self, shards, agent=agent, task_id=task_id, outcome=outcome, event=event)
    learning.reputation = float(chain_agent.reputation)  # reputation follows the chain
    model = learning.rl_model
    if model.has_applied(outcome_id):  # learned (journaled or checkpointed) before a crash lost the Redis marker
        _finish(rt, parsed, outcome_id, model.version)
        return {"status": "duplicate"}
    task = _chain_task(rt, parsed.task_id)  # one getTask for the hindsight and the capability lesson
    rewards = _hindsight(rt, parsed, record, task)
    reward = rewards.pop(record.action)
    scored = parsed.outcome != "lost" and parsed.event is not None and task is not None
    capability = _capability_lesson(parsed, task) if scored else None
    lesson = Lesson(outcome_id, record.state, record.action, reward, capability, hindsight=rewards)
    try:
        losses = learners.learn(parsed.agent, lesson)
    except NotOwner:  # nothing marked done: the shard's holder learns it (once, by outcome id)
        return _hand_on(self, shards, agent=agent, task_id=task_id, outcome=outcome, event=event)
    pushed = capability is not None and _push_capabilities(rt, learning, parsed, capability_weights(chain_agent))
    _finish(rt, parsed, outcome_id, model.version, task=task)
    TaskTrace(rt.redis, source="trainer").add(
        parsed.task_id,
        "trainer",
        agent=parsed.agent,
        outcome=parsed.outcome,
        reward=reward,
        version=model.version,
        capabilities_pushed=pushed,
    )
    metrics.record_training(
        parsed.agent, version=model.version, loss=losses[-1] if losses else None, replay_size=model.memory.size
    )
    return {
        "status": "trained",
        "reward": reward,
        "version": model.version,
        "memory": model.memory.size,
        "loss": losses[-1] if losses else None,
        "capabilities_pushed": pushed,
    }


def _chain_task(rt: Runtime, task_id: int) -> Any:
    """The task as the chain has it; None when it has none (a hand-sent outcome). Transient errors retry."""
    try:
        return rt.session.tasks.get_task(task_id)
    except TRANSIENT:
        raise
    except Exception as exc:
        log.warning("task %s not read from the chain: %s", task_id, exc)
        return None


def _hindsight(rt: Runtime, outcome: Outcome, record: BidRecord, task: Any) -> dict[int, float]:
    """The reward of the bid placed and of every level the auction tells in hindsight (``reward.hindsight``),
    all costs in: the agent's LLM bill on the task (per role, USD at ``eth_per_usd``), the bid's gas, and
    for a won task its own transactions at today's gas price."""
    bill = {
        (k.decode() if isinstance(k, bytes) else str(k)): float(v)
        for k, v in rt.redis.hgetall(keys.usage_of_bid(outcome.task_id, outcome.agent)).items()
    }
    reputation_at_bid = round(record.state[REPUTATION] * 100)
    beat, rivals, rival = None, outcome.outcome == "lost", None  # no auction: the bid placed (and abstaining) only
    rival_move: float | None = None
    if task is not None:
        try:
            auction = auction_of(rt, outcome.task_id, task)
            beat, rivals = auction.price_to_beat(outcome.agent, reputation_at_bid), auction.rivals_of(outcome.agent)
            rival = auction.best_rival_reputation(outcome.agent)
            best_rival = auction.best_rival(outcome.agent)
            if best_rival is not None:
                rival_move = RedisMarket(rt.redis).expected_move(auction.tags or ["general"], best_rival)
        except TRANSIENT:
            raise  # the node or Redis comes back: the outcome retries
        except Exception as exc:  # a malformed bid entry, an unreadable bidder: learn the bid placed only
            log.warning("no price to beat for task %s: %s", outcome.task_id, exc)
    # A lost auction whose price is known values the levels that would have won it: what winning would have
    # cost is then needed too (the agent's mean execution bill, the task's transactions at today's gas price).
    would_win = outcome.outcome == "lost" and beat is not None
    execution_usd = mean_execution_usd(rt.redis, outcome.agent) if would_win else bill.get("execute_usd", 0.0)
    settlement = settlement_of(
        outcome,
        record,
        price_to_beat=beat,
        rivals=rivals,
        rival_reputation=rival,
        rival_move=rival_move,
        evaluation_usd=bill.get("fit_usd", 0.0) + bill.get("bid_usd", 0.0),
        execution_usd=execution_usd,
        eth_per_usd=rt.settings.eth_per_usd,
        gas_price_wei=rt.session.client.gas_price() if outcome.outcome != "lost" or would_win else 0,
    )
    return hindsight(settlement, record.state[ANCHOR], record.action)


def mean_execution_usd(client: redis.Redis, agent: str) -> float:
    """What an execution has cost the agent on average (USD, 0 before its first): a lost task's would-be bill,
    for the levels that would have won it (``reward.hindsight``)."""
    spent, calls = client.hmget(keys.usage_of_agent(agent), ["execute_usd", "execute_calls"])
    try:
        count = int(calls) if calls is not None else 0
        return max(0.0, float(spent)) / count if spent is not None and count > 0 else 0.0
    except ValueError:  # not numbers (written by hand?): the estimate is unknown, the outcome is still learned
        log.warning("agent %s: unreadable execution bill %r / %r", agent, spent, calls)
        return 0.0


@app.task(name=routing.RECORD_CLEARING, bind=True, **RETRY)
def record_clearing(self: Task, task_id: int, event: dict[str, Any] | None = None) -> dict[str, Any]:
    """A finalized auction into the market's memory (``agentfleet.bidding.market``): its clearing price per
    tag, once per event, after the event is as deep as the outcomes the trainer learns from."""
    args = (event or {}).get("args") or {}
    try:
        if int(args["taskId"]) != int(task_id) or int(task_id) < 1:
            raise ValueError(f"event is about task {args['taskId']}, not {task_id}")
        winner, amount, bidders = str(args["winner"]), int(args["amount"]), int(args.get("bidCount", 0))
        if not winner.startswith("0x") or len(winner) != 42 or amount <= 0 or bidders < 0:
            raise ValueError(f"winner {winner!r}, amount {amount}, {bidders} bids")
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"invalid clearing of task {task_id!r}: {exc}") from None
    rt = runtime()
    done_id = clearing_done_id((event or {}).get("id") or task_id)
    if rt.redis.exists(keys.trainer_done(done_id)):
        TrainingInbox(rt.redis).settle(done_id)
        return {"status": "duplicate"}
    deep = _deep_enough(rt, event or {})
    if deep == "reverted":
        TrainingInbox(rt.redis).settle(done_id)
        return {"status": "reverted"}
    if deep is not None:
        raise self.retry(countdown=deep, max_retries=60)
    auction = auction_of(rt, int(task_id))
    known = auction.reputations.get(winner.lower())  # the winner's bid was seen: its reputation is already read
    reputation = known if known is not None else reputation_of(rt, winner)
    clearing = auction.clearing(winner, amount=amount, bidders=bidders, winner_reputation=reputation)
    pipe = rt.redis.pipeline()
    RedisMarket(rt.redis).record(auction.tags or ["general"], clearing, pipe=pipe)
    _mark_done(rt, done_id, 1, ex=30 * 24 * 3600, pipe=pipe)
    pipe.execute()
    return {"status": "recorded", "tags": auction.tags, "weighted": clearing.weighted, "bidders": clearing.bidders}


def _hand_on(task: Task, shards: int, **outcome: Any) -> dict[str, Any]:
    """An outcome of a shard this trainer does not hold: forward it to the shard's queue, whose holder learns it.

    A message that came from that very queue (a shard changing hands, this trainer's lease just lapsed) is not
    sent round in circles: it goes back into the queue after a third of a lease, for the next holder."""
    queue = routing.training_queue(outcome["agent"], shards)
    came_from = str((task.request.delivery_info or {}).get("routing_key") or "")
    if came_from == queue or came_from.endswith(f".{queue}"):  # RabbitMQ: a delayed retry's key has a prefix
        lease = _CLAIMS.lease_seconds if _CLAIMS is not None else get_settings().trainer_lease_seconds
        raise task.retry(countdown=min(10, max(1, round(lease / 3))), max_retries=60, queue=queue)
    app.send_task(routing.RECORD_OUTCOME, kwargs=outcome, queue=queue)
    return {"status": "forwarded", "queue": queue}


def _mark_done(rt: Runtime, done_id: str, value: object, *, ex: int | None = None, pipe: Any = None) -> None:
    """The done marker and the inbox letter settled, in one MULTI (the caller's, else a new one). One outcome
    per (task, agent): a deep reorg that re-creates a task id with another task costs at most that one sample
    (never learning twice is the safe side)."""
    writes = pipe if pipe is not None else rt.redis.pipeline()
    writes.set(keys.trainer_done(done_id), str(value), ex=ex)
    TrainingInbox(rt.redis).settle(done_id, pipe=writes)
    if pipe is None:
        writes.execute()


def _settled(rt: Runtime, outcome: Outcome) -> str | int | None:
    """None when the outcome's event is final enough to learn from; "reverted" when a reorg removed it;
    else the seconds to wait until it is ``training_confirmations`` blocks deep."""
    event = outcome.event or {}
    deep = _deep_enough(rt, event)
    if (
        deep is not None
        or not isinstance(event.get("block_number"), int)
        or not isinstance(event.get("block_hash"), str)
    ):
        return deep  # not deep yet, reverted, or a hand-sent outcome (celery call): nothing to check against
    amount, _live = rt.session.auction.bid_of(outcome.task_id, outcome.agent)
    if amount > 0:
        return None
    if AuctionMode(rt.session.tasks.get_task(outcome.task_id).mode) == AuctionMode.SEALED:
        return None  # a sealed bid never was on chain: the assignment's block (checked above) is what counts
    return "reverted"  # the open bid itself was in blocks a reorg replaced


def _deep_enough(rt: Runtime, event: dict[str, Any]) -> str | int | None:
    """None when the event is ``training_confirmations`` blocks deep and still canonical (or carries no
    block: a hand-sent message); "reverted" when a reorg removed it; else the seconds to wait."""
    if rt.redis.exists(keys.reverted(event.get("id"))):
        return "reverted"
    number, block_hash = event.get("block_number"), event.get("block_hash")
    if not isinstance(number, int) or not isinstance(block_hash, str):
        return None
    w3 = rt.session.client.w3
    missing = number + rt.settings.training_confirmations - int(w3.eth.block_number)
    if missing > 0:
        return min(20, 1 + missing)  # about a block a second on the chains we know; capped below visibility
    canonical = w3.eth.get_block(number)["hash"].to_0x_hex()
    return "reverted" if canonical.lower() != block_hash.lower() else None


def _finish(rt: Runtime, outcome: Outcome, outcome_id: str, value: object, *, task: Any = None) -> None:
    """An outcome settled: counted in the agent's win rate, the reputation its task moved kept for the tag's
    market (``RedisMarket.record_move``: what handing a task to this agent costs its rivals), its score kept
    for the agent's next fit on the tags (``RedisMarket.record_score``, ``state.learned_fit``), and marked done;
    the move, the score and the marker in one MULTI, so a retried message records them once."""
    _count_recent(rt, outcome, outcome_id)
    pipe = rt.redis.pipeline()
    said = outcome.event is not None  # hand-sent: nothing the chain said
    moved = outcome_move(outcome) if said else None
    score = outcome_score(outcome) if said else None
    if moved is not None or score is not None:
        task = task if task is not None else _chain_task(rt, outcome.task_id)
        if task is not None:
            tags = [tag_text(t) for t in task.tags] or ["general"]
            market = RedisMarket(rt.redis)
            if moved is not None:
                market.record_move(tags, outcome.agent, moved, pipe=pipe)
            if score is not None:
                market.record_score(tags, outcome.agent, score, pipe=pipe)
    _mark_done(rt, outcome_id, value, pipe=pipe)
    pipe.execute()


def _count_recent(rt: Runtime, outcome: Outcome, outcome_id: str) -> None:
    """The settled bid counts once in the agent's recent win rate, whichever path the outcome took."""
    if rt.redis.set(keys.trainer_counted(outcome_id), 1, nx=True, ex=30 * 24 * 3600):
        record_recent(rt.redis, outcome.agent, won=outcome.outcome != "lost")


def _learning(rt: Runtime, agent: str, chain_agent: Any) -> LearningIntegration:
    from agentfleet.bidding.dqn import load_or_fresh, model_options
    from trainer.integration import LearningIntegration

    member = rt.directory.get(agent)
    profile = AgentLearningConfig.get_profile(member.learning_profile if member else "balanced")
    options = model_options(profile)
    models = rt.settings.models_dir
    try:
        learning = LearningIntegration.load_state(agent, models_dir=models, model_options=options)
    except ValueError:
        learning = LearningIntegration(
            agent,
            capability_weights(chain_agent),
            load_or_fresh(agent, models, **options),
            chain_agent.reputation,
            models_dir=models,
        )
    return learning


_LEARNERS: Learners | None = None
_CLAIMS: ShardClaims | None = None  # this trainer's shard leases (AGENTFLEET_TRAINER_SHARDS > 1)


def _learners(rt: Runtime) -> Learners:
    """This trainer process's agents (one cache per models folder and claims), checkpointed when the worker
    stops; fenced by the shard leases when there are several trainers."""
    global _LEARNERS
    if _LEARNERS is None or _LEARNERS.models_dir != rt.settings.models_dir or _LEARNERS.fence is not _CLAIMS:
        if _LEARNERS is not None:  # another models folder (tests): leave the old one complete on disk
            try:
                _LEARNERS.checkpoint_all()
            except OSError as exc:
                log.warning("checkpoint of the previous models folder failed: %s", exc)
        _LEARNERS = Learners(
            rt.settings.models_dir,
            checkpoint_every=rt.settings.trainer_checkpoint_every,
            checkpoint_seconds=rt.settings.trainer_checkpoint_seconds,
            fence=_CLAIMS,
        )
        worker_shutdown.connect(stop_hook(_LEARNERS), weak=False)
    return _LEARNERS


def use_claims(claims: ShardClaims | None) -> None:
    """Install this process's shard claims (the worker does it at ``worker_ready``; tests install theirs)."""
    global _CLAIMS
    _CLAIMS = claims


@worker_ready.connect
def _claim_shards(sender: Any = None, **_kwargs: Any) -> None:
    """A trainer (a worker consuming ``training``; the sender is its consumer) with more than one shard starts
    claiming shards. Agent workers load this module too: they consume no ``training`` and nothing starts."""
    settings = get_settings()
    if settings.trainer_shards <= 1 or _CLAIMS is not None or not consumes(sender, routing.TRAINING):
        return
    if not in_process_pool(sender):  # tasks in other processes or threads: no lease would fence their writes
        log.error("trainer shards need the solo pool (-P solo): no shard claimed, the shard queues are not consumed")
        return
    use_claims(
        start_in_worker(
            sender,
            redis_url=settings.redis_url.get_secret_value(),
            shards=settings.trainer_shards,
            lease_seconds=settings.trainer_lease_seconds,
            learners=lambda: _LEARNERS,
        )
    )
    log.info("trainer shards: %s, claimed with %s s leases", settings.trainer_shards, settings.trainer_lease_seconds)


@worker_shutdown.connect
def _release_shards(**_kwargs: Any) -> None:
    """Checkpoint the agents of the shards held, stop consuming their queues, delete the leases (the other
    trainers take the shards at their next heartbeat instead of a lease later)."""
    claims = _CLAIMS
    if claims is None:
        return
    use_claims(None)
    claims.close()


def _capability_lesson(outcome: Outcome, task: Any) -> tuple[int, str, float, float, list[str]]:
    """What the scored task teaches the agent's capability weights (applied with the transition)."""
    tags = [tag_text(t) for t in task.tags]
    return (outcome.task_id, tags[0] if tags else "general", float(task.score), task.price / 1e18, tags)


def _push_capabilities(rt: Runtime, learning: LearningIntegration, outcome: Outcome, on_chain: dict[str, int]) -> bool:
    """Push the local weights on chain only when they drifted beyond the threshold."""
    if not learning.moved_beyond(on_chain, rt.settings.capability_push_threshold):
        return False
    member = rt.directory.get(outcome.agent)
    if member is None or member.hd_index is None:
        return False
    weights = learning.get_capabilities()
    rt.session.registry.update_capabilities(
        rt.session.account(member.hd_index), list(on_chain), [weights.get(c, on_chain[c]) for c in on_chain]
    )
    return True
