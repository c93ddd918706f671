"""The agent tasks: consider (evaluate + bid), execute, evaluate (score + complete), keeper finalize.

Each task validates its arguments (a malformed ``celery call`` fails at once with a clear message), skips
work that is done (ledger + chain state), holds a claim while it works, and retries transient LLM/RPC
failures with exponential backoff and jitter before ending in a visible FAILURE (result backend and the
``keys.FAILURES`` stream).
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import Task
from celery.signals import task_failure
from pydantic import BaseModel, Field, ValidationError, model_validator
from web3 import Web3

from agentfleet import (
    policy,
    task_trace,  # noqa: F401  (writes each run into the market task's trace)
)
from agentfleet import worker_metrics as metrics
from agentfleet.bidding import prefilter
from agentfleet.bidding.choice import choose_strategy
from agentfleet.bidding.context import BidContext, BiddingStrategy
from agentfleet.bidding.costs import bid_cost_wei
from agentfleet.bidding.market import Clearing, RedisMarket, bidders_of, features_of, merged
from agentfleet.bidding.record import BIDSTATE_TTL, BidRecord, drop_bid_state, recent_win_rate, store_bid_state
from agentfleet.bidding.sealed import BidBook, bids_seen, sign_bid
from agentfleet.bidding.state import nearest_action, state_of
from agentfleet.chain import bindings as b
from agentfleet.chain.errors import ChainError
from agentfleet.chain.local import chain_now
from agentfleet.chain.market import created_event, result_event, tag_text
from agentfleet.chain.session import capability_weights
from agentfleet.directory import FleetAgent
from agentfleet.llm import LLMOutputError, TaskView, Usage
from agentfleet.profiles import AgentLearningConfig
from agentfleet.protocol import keys, limits, routing
from agentfleet.protocol.app import app
from agentfleet.protocol.status import AuctionMode, TaskStatus
from agentfleet.retry import RETRY, TRANSIENT, TryLater
from agentfleet.runtime import Runtime, redis_only, runtime, secrets_of
from agentfleet.trace import TaskTrace
from workers import review
from workers.idempotency import Claimed, WorkLedger

log = logging.getLogger(__name__)


class AgentTaskArgs(BaseModel):
    agent: policy.Address
    task_id: int = Field(ge=1)
    event: dict[str, Any] | None = None


class TaskArgs(BaseModel):
    task_id: int = Field(ge=1)
    event: dict[str, Any] | None = None


def _parse(model: type[BaseModel], **kwargs: Any) -> Any:
    try:
        return model.model_validate(kwargs)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"invalid arguments: {problems}") from None


def _fleet_agent(rt: Runtime, address: str) -> FleetAgent:
    agent = rt.directory.get(address)
    if agent is None or agent.hd_index is None:
        raise ValueError(f"{address} is not an agent of this fleet")
    return agent


def _record_usage(rt: Runtime, agent: str, task_id: int, usage: Usage, role: str) -> None:
    """One LLM call: in the task's trace (always, the offline provider's too), and its tokens and cost in the
    agent's and the task's usage hashes and the metrics."""
    TaskTrace(rt.redis, source=socket.gethostname()).add(
        task_id,
        "llm",
        role=role,
        agent=agent,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cost_usd=round(usage.cost_usd, 6),
        offline=rt.provider.offline,
    )
    if not (usage.prompt_tokens or usage.completion_tokens):
        return
    pipe = rt.redis.pipeline()
    for key in (keys.usage_of_agent(agent), keys.usage_of_task(task_id)):
        pipe.hincrby(key, "prompt_tokens", usage.prompt_tokens)
        pipe.hincrby(key, "completion_tokens", usage.completion_tokens)
        pipe.hincrbyfloat(key, "cost_usd", usage.cost_usd)
    if usage.cost_usd:  # the agent's own bill on the task, per role: a cost in the reward the trainer computes
        pipe.hincrbyfloat(keys.usage_of_bid(task_id, agent), f"{role}_usd", usage.cost_usd)
        pipe.expire(keys.usage_of_bid(task_id, agent), BIDSTATE_TTL)
        # and per role over all its tasks: what an execution costs it on average (the trainer's estimate of
        # what winning a task it lost would have cost)
        pipe.hincrbyfloat(keys.usage_of_agent(agent), f"{role}_usd", usage.cost_usd)
        pipe.hincrby(keys.usage_of_agent(agent), f"{role}_calls", 1)
    pipe.execute()
    metrics.record_llm_usage(usage.prompt_tokens, usage.completion_tokens, usage.cost_usd)


def _log_action(rt: Runtime, account: Any, task_id: int, action: str, data: bytes) -> None:
    if not rt.settings.action_logging:
        return
    try:
        rt.session.actions.log_action(account, task_id, action, Web3.keccak(data))
    except ChainError as exc:  # the audit trail must never block the work itself
        log.warning("action log %s for task %s failed: %s", action, task_id, exc)


Work = Callable[[Runtime, Any], dict[str, Any]]
StillDone = Callable[[Runtime, Any, dict[str, Any]], bool]


def _guarded(task: Task, args: Any, key: str, work: Work, *, still_done: StillDone | None = None) -> dict[str, Any]:
    """What every chain-effect task does around its work: skip an event a reorg reverted; skip work whose
    done record the chain still confirms (``still_done``; without it the work's own chain checks decide);
    hold the claim on ``key`` while working. A live claim elsewhere means a live worker: back off."""
    rt = runtime()
    event = args.event
    if event and rt.redis.exists(keys.reverted(event.get("id"))):
        return {"status": "reverted"}
    ledger = WorkLedger(rt.redis, claim_ttl=rt.settings.claim_ttl)
    done = ledger.done(key)
    if done is not None and still_done is not None and still_done(rt, args, done):
        return {**done, "duplicate": True}
    try:
        with ledger.hold(key):
            return ledger.finish(key, work(rt, args))
    except Claimed:
        if task.request.retries >= (task.max_retries or 0):
            return {"status": "in_progress_elsewhere"}  # the holder finishes, or the reconciler re-drives
        raise task.retry(countdown=ledger.claim_ttl_left(key) + 1, max_retries=task.max_retries) from None


def _text(rt: Runtime, task_id: int) -> str | None:
    """The task's text: the content store first, else the TaskCreated event on chain (then stored). None when
    it was published only by URI and is not in the store: the fleet does not fetch from outside."""
    text = rt.texts.of_task(task_id)
    if text is not None:
        return text
    event = created_event(rt.session, task_id)
    if event is None or not event.get("description"):
        return None
    rt.texts.put(str(event["description"]), task_id=task_id, digest=bytes(event["contentHash"]))
    return str(event["description"])


def _view(rt: Runtime, task_id: int, task: Any) -> TaskView | None:
    text = _text(rt, task_id)
    if text is None:
        return None
    return TaskView(
        task_id=task_id,
        description=policy.clean_task_text(text),
        tags=tuple(tag_text(t) for t in task.tags),
        reward_eth=float(Web3.from_wei(task.reward, "ether")),
    )


@app.task(name=routing.CONSIDER, bind=True, **RETRY)
def consider(
    self: Task,
    agent: str | None = None,
    task_id: int | None = None,
    event: dict[str, Any] | None = None,
    agents: list[str] | None = None,
) -> dict[str, Any]:
    """Evaluate a new task for one agent (``agent``) or several of one profile (``agents``, what the listener
    sends: one message per profile queue) and, where a profile says so, bid inside policy bounds.

    A batch shares what does not depend on the agent: the task's terms (from the TaskCreated event it carries,
    else one chain read), the chain's clock and the gas price, the task's text. Each agent then decides under
    its own ledger key and claim, so a redelivered or retried batch skips the agents already decided."""
    args = _parse(ConsiderArgs, agent=agent, task_id=task_id, event=event, agents=agents)
    rt = runtime()
    if args.event and rt.redis.exists(keys.reverted(args.event.get("id"))):
        return {"status": "reverted"}
    facts = _TaskFacts.of(rt, args)
    decisions: dict[str, dict[str, Any]] = {}
    claimed: list[str] = []
    failure: Exception | None = None
    for member_address in args.members:
        try:
            decisions[member_address] = _consider_one(rt, facts, member_address)
        except Claimed:
            claimed.append(member_address)
        except TRANSIENT as exc:  # the others still decide; the message retries for this one
            failure = failure or exc
        except Exception as exc:  # one agent's lasting error (not ours, a revert...) must not cost the others
            if args.agent is not None:
                raise
            reason = policy.scrub(f"{type(exc).__name__}: {exc}", rt.secrets())[:300]
            log.error("consider of task %s for %s failed: %s", args.task_id, member_address, reason)
            decisions[member_address] = {"status": "failed", "reason": reason}
    if failure is not None:
        raise failure
    if claimed:
        ledger = WorkLedger(rt.redis, claim_ttl=rt.settings.claim_ttl)
        if self.request.retries >= (self.max_retries or 0):
            decisions.update({a: {"status": "in_progress_elsewhere"} for a in claimed})
        else:  # a live claim is a live worker; a dead one's claim lapses within the claim TTL
            wait = max(ledger.claim_ttl_left(_consider_key(args.task_id, a)) for a in claimed)
            raise self.retry(countdown=wait + 1, max_retries=self.max_retries)
    if args.agent is not None:
        return decisions[args.members[0]]
    return {"status": "considered", "decisions": decisions}


class ConsiderArgs(BaseModel):
    agent: policy.Address | None = None
    agents: list[policy.Address] | None = Field(default=None, min_length=1, max_length=256)
    task_id: int = Field(ge=1)
    event: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> ConsiderArgs:
        if (self.agent is None) == (self.agents is None):
            raise ValueError("give either agent or agents")
        return self

    @property
    def members(self) -> list[str]:
        return [self.agent] if self.agent is not None else list(dict.fromkeys(self.agents or []))


def _consider_key(task_id: int, agent: str) -> str:
    return f"consider:{task_id}:{agent.lower()}"


class _ChainClock:
    """The chain's time read once per message, then followed by the local monotonic clock: a batch deciding
    for a minute does not read the chain again for each agent (the keeper still judges late bids by chain time)."""

    def __init__(self, rt: Runtime) -> None:
        self.base = chain_now(rt.session.client.w3)
        self.started = time.monotonic()

    def now(self) -> int:
        return self.base + int(time.monotonic() - self.started)


@dataclass(frozen=True)
class _TaskFacts:
    """What every agent of a consider message needs to know about the task, read once."""

    task_id: int
    reward: int
    deadline: int
    mode: AuctionMode
    tags: tuple[str, ...]
    open: bool
    clock: _ChainClock
    bid_cost_wei: int
    view: TaskView | None
    market: list[list[Clearing]]  # per tag, its recent clearings (read once, features per agent)
    reputations: dict[str, int]  # the reputations now of the bidders those clearings name

    @classmethod
    def of(cls, rt: Runtime, args: ConsiderArgs) -> _TaskFacts:
        event = args.event or {}
        terms = event.get("args", {}) if event.get("name") == "TaskCreated" else {}
        if int(terms.get("taskId", 0) or 0) == args.task_id and _has_terms(terms):
            reward, deadline, mode = int(terms["reward"]), int(terms["biddingDeadline"]), int(terms["mode"])
            tags, is_open = tuple(tag_text(str(t)) for t in terms["tags"]), True  # the event: the task as created
        else:  # a hand-sent or re-driven consider: the chain's view
            task = rt.session.tasks.get_task(args.task_id)
            reward, deadline, mode = int(task.reward), int(task.biddingDeadline), int(task.mode)
            tags, is_open = tuple(tag_text(t) for t in task.tags), task.status == TaskStatus.OPEN
        auction = AuctionMode(mode)
        clock = _ChainClock(rt)
        cost = bid_cost_wei(rt.session.client.gas_price()) if auction == AuctionMode.OPEN else 0  # signing is free
        text = _text(rt, args.task_id) if is_open and clock.now() < deadline else None
        view = None
        if text is not None:
            reward_eth = float(Web3.from_wei(reward, "ether"))
            view = TaskView(
                task_id=args.task_id, description=policy.clean_task_text(text), tags=tags, reward_eth=reward_eth
            )
        # Read whatever the strategy: every bid's record is training data, and its state carries the market.
        book = RedisMarket(rt.redis)
        market = book.read(list(tags)) if view is not None else []
        reputations = book.reputations(bidders_of(market))
        return cls(args.task_id, reward, deadline, auction, tags, is_open, clock, cost, view, market, reputations)


def _has_terms(terms: dict[str, Any]) -> bool:
    try:
        int(terms["reward"]), int(terms["biddingDeadline"]), AuctionMode(int(terms["mode"]))
        return isinstance(terms["tags"], list)
    except (KeyError, TypeError, ValueError):
        return False


def _consider_one(rt: Runtime, facts: _TaskFacts, address: str) -> dict[str, Any]:
    """One agent's decision under its ledger key and claim (``Claimed`` when another worker holds it)."""
    key = _consider_key(facts.task_id, address)
    ledger = WorkLedger(rt.redis, claim_ttl=rt.settings.claim_ttl)
    done = ledger.done(key)
    if done is not None and _decision_stands(rt, facts, address, done):
        return {**done, "duplicate": True}
    with ledger.hold(key):
        return ledger.finish(key, _decide(rt, facts, address))


def _own_scores(rt: Runtime, facts: _TaskFacts, agent: str) -> list[float]:
    """The agent's recent scores on the task's tags, as the trainer keeps them (a task without tags: "general")."""
    return RedisMarket(rt.redis).scores(list(facts.tags) or ["general"], agent)


def _decision_stands(rt: Runtime, facts: _TaskFacts, agent: str, done: dict[str, Any]) -> bool:
    """A refusal stands; an open bid stands only while the chain still has it (a reorg may have dropped it),
    a sealed one while the bid book has it."""
    if done.get("status") != "bid":
        return True
    if done.get("mode") == AuctionMode.SEALED.label:
        return BidBook(rt.redis).get(facts.task_id, agent) is not None
    _amount, live = rt.session.auction.bid_of(facts.task_id, agent)
    return bool(live) or rt.session.tasks.status_of(facts.task_id) != TaskStatus.OPEN


def _decide(rt: Runtime, facts: _TaskFacts, address: str) -> dict[str, Any]:
    s = rt.session
    member = _fleet_agent(rt, address)
    if not facts.open or facts.clock.now() >= facts.deadline:
        return {"status": "closed"}
    standing = _standing_bid(rt, facts, address)
    if standing is not None:
        return {"status": "bid", "amount": standing, "mode": facts.mode.label, "note": "already placed"}
    view = facts.view
    if view is None:
        return {"status": "refused", "reason": "task text unavailable (not in the event or the content store)"}
    capabilities, reputation = _standing_of(rt, member)
    reach = prefilter.reach(capabilities, list(view.tags), view.description)
    if reach is not None and not reach.enough(rt.settings.prefilter_min_weight):
        return {
            "status": "refused",
            "reason": f"prefilter: best capability the task names weighs {reach.weight} "
            f"(< {rt.settings.prefilter_min_weight}); the LLM was not asked",
            "prefiltered": True,
        }
    try:
        fit, usage = rt.provider.evaluate_task_fit(capabilities, view)
        _record_usage(rt, address, facts.task_id, usage, "fit")
        fit_score = float(policy.clamp_score(fit.score))
    except LLMOutputError as exc:
        log.warning("fit evaluation for task %s unusable (%s): not bidding", facts.task_id, exc)
        return {"status": "refused", "reason": f"LLM answer unusable: {exc}"}
    advice = None
    if not rt.provider.offline:
        try:
            bid_advice, usage = rt.provider.calculate_bid_amount(capabilities, view, reputation, 0)
            _record_usage(rt, address, facts.task_id, usage, "bid")
            advice = bid_advice.fraction
        except LLMOutputError:
            advice = None  # advice is optional; the strategy prices alone
    now = facts.clock.now()
    ctx = BidContext(
        task_id=facts.task_id,
        reward_wei=facts.reward,
        tags=list(view.tags),
        fit_score=fit_score,
        capability_weights=capabilities,
        reputation=reputation,
        seconds_to_deadline=max(0, facts.deadline - now),
        llm_fraction=advice,
        competing_bids=bids_seen(rt.redis, facts.task_id),
        recent_win_rate=recent_win_rate(rt.redis, address),
        bid_cost_wei=facts.bid_cost_wei,
        market=features_of(merged(facts.market), address, facts.reputations, _own_scores(rt, facts, address)),
    )
    decision = _strategy(rt, member).decide(ctx)
    if not decision.bid:
        return {"status": "refused", "reason": decision.reason, "fit": fit_score}
    # The learning record goes first: a kill after the bid lands must not lose what the agent saw. A record
    # whose bid never lands is dropped here or by the reconciler once the auction is over.
    state = state_of(ctx)
    record = BidRecord(
        state=state.vector(),
        action=nearest_action(decision.amount_fraction, state.anchor),
        reward_wei=facts.reward,
        amount_wei=decision.amount_wei,
        bid_cost_wei=ctx.bid_cost_wei,
    )
    store_bid_state(rt.redis, facts.task_id, address, record)
    account = s.account(member.hd_index or 0)
    if facts.mode == AuctionMode.SEALED:
        if not _publish_sealed(rt, account, facts, decision.amount_wei):
            drop_bid_state(rt.redis, facts.task_id, address)
            return {"status": "closed"}
    else:
        try:
            s.auction.place_bid(account, facts.task_id, decision.amount_wei)
        except b.AlreadyBid:
            pass  # an earlier attempt of ours landed after all
        except (b.BiddingClosed, b.TaskNotOpen, b.AlreadyFinalized):  # the auction closed meanwhile
            drop_bid_state(rt.redis, facts.task_id, address)
            return {"status": "closed"}
        _log_action(rt, account, facts.task_id, "bid", str(decision.amount_wei).encode())
    return {
        "status": "bid",
        "mode": facts.mode.label,
        "amount": decision.amount_wei,
        "fraction": decision.amount_fraction,
        "fit": fit_score,
    }


def _standing_of(rt: Runtime, member: FleetAgent) -> tuple[dict[str, int], int]:
    """The agent's capability weights and reputation: from the directory the listener keeps in step with the
    registry's events (no chain read), else from the chain (an entry without them)."""
    known = member.standing()
    if known is not None:
        return known
    chain_agent = rt.session.registry.get_agent(member.address)
    return capability_weights(chain_agent), int(chain_agent.reputation)


def _standing_bid(rt: Runtime, facts: _TaskFacts, agent: str) -> int | None:
    """The amount of the bid this agent already has on the task (bid book or chain), if any. The chain is
    asked only when an earlier attempt got as far as the learning record (written just before a bid is
    sent): on a first attempt there can be no bid, and no read is spent on it."""
    if facts.mode == AuctionMode.SEALED:
        bid = BidBook(rt.redis).get(facts.task_id, agent)
        return bid.amount if bid is not None else None
    if not rt.redis.exists(keys.bid_state(facts.task_id, agent)):
        return None
    amount, live = rt.session.auction.bid_of(facts.task_id, agent)
    return int(amount) if live else None


def _publish_sealed(rt: Runtime, account: Any, facts: _TaskFacts, amount: int) -> bool:
    """Sign the bid (valid through the reveal window) and put it in the task's bid book: no transaction.
    False when the deadline passed meanwhile (the keeper would leave a late bid out anyway)."""
    s = rt.session
    arrived = facts.clock.now()
    if arrived >= facts.deadline:
        return False
    bid = sign_bid(
        account,
        chain_id=s.client.chain_id,
        auction=s.auction.address,
        task_id=facts.task_id,
        amount=amount,
        expiry=facts.deadline + limits.REVEAL_WINDOW,
    )
    BidBook(rt.redis).publish(bid.model_copy(update={"received_at": arrived}))
    return True


def _strategy(rt: Runtime, member: FleetAgent) -> BiddingStrategy:
    profile = AgentLearningConfig.get_profile(member.learning_profile)
    settings = rt.settings
    return choose_strategy(
        settings.bidding_strategy, member.address, profile, rt.policy_cache, warmup=settings.rl_warmup
    )


@app.task(name=routing.EXECUTE, bind=True, **RETRY)
def execute(self: Task, agent: str, task_id: int, event: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run a won task with the LLM, store the result content-addressed, submit its hash on chain."""
    args = _parse(AgentTaskArgs, agent=agent, task_id=task_id, event=event)
    return _guarded(self, args, f"execute:{args.task_id}", _execute)


def _execute(rt: Runtime, args: AgentTaskArgs) -> dict[str, Any]:
    s = rt.session
    member = _fleet_agent(rt, args.agent)
    account = s.account(member.hd_index or 0)
    task = s.tasks.get_task(args.task_id)
    if task.assignee != args.agent:
        return {"status": "not_assignee"}
    if task.status != TaskStatus.ASSIGNED:
        return {"status": "already_submitted" if task.status > TaskStatus.ASSIGNED else "not_assigned"}
    if chain_now(s.client.w3) > task.executionDeadline:
        return {"status": "window_passed"}  # the reconciler expires it (refund + penalty)
    ledger = WorkLedger(rt.redis, claim_ttl=rt.settings.claim_ttl)
    attempts_key = f"execute:{args.task_id}:{args.agent.lower()}"
    if ledger.attempts(attempts_key) >= rt.settings.execute_attempts:
        return {"status": "given_up", "reason": "no usable LLM answer; the task expires at its deadline"}
    chain_agent = s.registry.get_agent(args.agent)
    capabilities = capability_weights(chain_agent)
    view = _view(rt, args.task_id, task)
    if view is None:
        return {"status": "given_up", "reason": "task text unavailable; the task expires at its deadline"}
    try:
        result, usage = rt.provider.execute_task(member.name, capabilities, view)
    except LLMOutputError as exc:
        if ledger.add_attempt(attempts_key, str(exc)) >= rt.settings.execute_attempts:
            log.error(
                "task %s: no usable answer after %s executions; giving it up (it expires at its deadline, "
                "the requester is refunded)",
                args.task_id,
                rt.settings.execute_attempts,
            )
            metrics.record_stuck("execute_given_up")
            return {"status": "given_up", "reason": policy.scrub(str(exc), rt.secrets())[:300]}
        raise TryLater(f"execution answer unusable: {exc}") from exc
    _record_usage(rt, args.agent, args.task_id, usage, "execute")
    content = policy.limit_result(policy.scrub(result.content, rt.secrets()))
    digest = rt.results.put(content)
    try:
        s.tasks.submit_result(account, args.task_id, digest, f"sha256:{digest.hex()}")
    except b.InvalidStatus:
        return {"status": "already_submitted"}
    except b.ExecutionDeadlinePassed:
        return {"status": "window_passed"}
    _log_action(rt, account, args.task_id, "submit", digest)
    return {"status": "submitted", "result_hash": "0x" + digest.hex(), "bytes": len(content.encode())}


@app.task(name=routing.EVALUATE, bind=True, **RETRY)
def evaluate(self: Task, task_id: int, event: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score a submitted result as the requester's evaluator and complete the task on chain."""
    args = _parse(TaskArgs, task_id=task_id, event=event)
    return _guarded(self, args, f"evaluate:{args.task_id}", _evaluate)


def _evaluate(rt: Runtime, args: TaskArgs) -> dict[str, Any]:
    s = rt.session
    task = s.tasks.get_task(args.task_id)
    if task.status != TaskStatus.SUBMITTED:
        return {"status": "not_submitted" if task.status < TaskStatus.SUBMITTED else "already_completed"}
    if review.waiting(rt.redis, args.task_id):
        return {"status": "needs_review"}
    view = _view(rt, args.task_id, task)
    if view is None:  # not the agent's fault: a human decides
        review.request(rt.redis, args.task_id, "task text unavailable to the evaluator")
        return {"status": "needs_review", "reason": "task text unavailable"}
    digest = _result_hash(rt, args)
    content = rt.results.get(digest) if digest is not None else None
    if content is None:  # the agent's result is not where its hash says: the agent's failure, scored as such
        score, feedback = 0, "result not found in the result store (or its hash does not match)"
    else:
        try:
            verdict, usage = rt.provider.evaluate_task_result(view, content)
        except LLMOutputError as exc:  # the evaluator's failure: never a 0 that punishes the agent
            return _scoring_failed(rt, args.task_id, exc)
        _record_usage(rt, task.assignee, args.task_id, usage, "score")
        score, feedback = policy.clamp_score(verdict.score), verdict.feedback[:500]
    try:
        s.tasks.complete_task(s.evaluator, args.task_id, score)
    except b.InvalidStatus:
        return {"status": "already_completed"}
    return {"status": "completed", "score": score, "feedback": feedback}


def _result_hash(rt: Runtime, args: TaskArgs) -> bytes | None:
    """The submitted result's hash: from the ResultSubmitted event that brought us here, else the chain's logs
    (a re-drive by the reconciler carries no event)."""
    event = args.event or {}
    if event.get("name") == "ResultSubmitted":
        value = str(event.get("args", {}).get("resultHash", ""))
        if value.startswith("0x") and len(value) == 66:
            return bytes.fromhex(value[2:])
    found = result_event(rt.session, args.task_id)
    return bytes(found["resultHash"]) if found else None


def _scoring_failed(rt: Runtime, task_id: int, exc: LLMOutputError) -> dict[str, Any]:
    """Count the failed scoring; retry later, and after the limit leave the task for a human decision."""
    ledger = WorkLedger(rt.redis, claim_ttl=rt.settings.claim_ttl)
    reason = policy.scrub(str(exc), rt.secrets())[:300]
    if ledger.add_attempt(f"evaluate:{task_id}", reason) < rt.settings.score_attempts:
        raise TryLater(f"scoring answer unusable: {reason}") from exc
    review.request(rt.redis, task_id, f"no usable score after {rt.settings.score_attempts} attempts: {reason}")
    metrics.record_stuck("needs_review")
    log.error("task %s waits for a human decision: no usable score (agentfleet stuck)", task_id)
    return {"status": "needs_review", "reason": reason}


@app.task(name=routing.DELIVER, bind=True, **RETRY)
def deliver_message(self: Task, agent: str, event: dict[str, Any]) -> dict[str, Any]:
    """Put a MessageHub message in the recipient agent's inbox (payload stays encrypted to its key)."""
    if not Web3.is_address(agent) or not isinstance(event, dict) or "args" not in event:
        raise ValueError("invalid arguments: need an agent address and a MessageSent event")
    rt = runtime()
    args = event["args"]
    entry = {
        "id": event.get("id"),
        "message_id": args.get("messageId"),
        "from": args.get("from"),
        "topic": args.get("topic"),
        "payload": args.get("payload"),
        "task_id": args.get("taskId"),
    }
    rt.redis.rpush(keys.inbox(agent), json.dumps(entry))
    return {"status": "delivered"}


@task_failure.connect
def _record_failure(
    sender: Task | None = None, task_id: str | None = None, exception: BaseException | None = None, **_kwargs: Any
) -> None:
    """Every final failure is visible: a stream entry with the task name, id and error (no secrets)."""
    try:
        client, settings = redis_only()  # not runtime(): the failure may be that the chain is unreachable
        text = policy.scrub(f"{type(exception).__name__}: {exception}", secrets_of(settings))[:500]
        client.xadd(
            keys.FAILURES,
            {"task": getattr(sender, "name", "?"), "id": task_id or "", "error": text, "at": str(time.time())},
            maxlen=10_000,
        )
    except Exception:  # never let failure reporting fail the worker
        log.exception("could not record a task failure")
