"""The reconciler: level-triggered repair beside the edge-triggered events (a keeper task run by beat).

Events are edges and can be missed (a listener killed between read and send, a reorg that removed an effect,
a worker killed after its claim, an LLM that failed until the retries ran out). The chain is the level: every
sweep reads the state of unfinished tasks and re-drives whatever is stuck, the way a Kubernetes controller
converges on the desired state:

- Open past its bidding deadline: finalize (keeper queue).
- Assigned past its execution window: ``expireTask`` (refund to the requester, penalty to the agent).
- Assigned to one of our agents with no submission: execute again (the handler's claim and chain checks keep
  it to one submission; an execution given up after its attempts is left to expire).
- Submitted, with our evaluator: evaluate (unless it waits for a human decision).
- Our bids (on chain, or in the bid book for sealed auctions) with no learning record: record one (flagged
  ``reconstructed``: the trainer counts it for the win rate but does not learn from a state it never saw);
  records whose bid never landed: dropped.
- Outcome and clearing messages the trainer has not settled ``training_resend_after`` seconds after their
  send: sent again (``agentfleet.protocol.inbox``: what the trainer learns has no level on chain to re-read).

A reorg deeper than the confirmations can take a task's last transaction away (a completion, an expiry) and
put a task that had left the unfinished set back in Submitted or Assigned, where no event will come again.
So a task seen final moves to ``FINISHED`` (scored by the head block it was seen at) for ``REORG_HORIZON``
blocks, and each sweep checks that the heads the previous sweep read are still canonical; when one is not,
every task in ``FINISHED`` is read again (and its bid records with it).

It scales with open work, not with every task ever: new task ids enter a sorted set of unfinished tasks
(``UNFINISHED``, under ``keys.RECONCILE``) in bounded batches, finished ones leave it, and each sweep reads at
most ``reconcile_batch`` of them, resuming where the last sweep stopped. Re-drives are rate limited per task
and action (``SENT``, SET NX with a TTL), so concurrent sweeps do not multiply work;
every action is idempotent on chain anyway.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping
from contextlib import suppress
from typing import Any, cast

import redis
from celery import Task
from web3.exceptions import BlockNotFound

from agentfleet.bidding.record import BidRecord, drop_bid_state, store_bid_state
from agentfleet.bidding.sealed import BidBook
from agentfleet.bidding.state import STATE_SIZE, nearest_action
from agentfleet.chain.local import chain_now
from agentfleet.chain.market import bids_placed
from agentfleet.protocol import keys, routing
from agentfleet.protocol.app import app
from agentfleet.protocol.inbox import TrainingInbox
from agentfleet.protocol.status import AuctionMode, TaskStatus
from agentfleet.runtime import Runtime, runtime
from workers import review
from workers.idempotency import WorkLedger

log = logging.getLogger(__name__)

UNFINISHED = f"{keys.RECONCILE}:unfinished"  # sorted set: task id -> task id
SEEN = f"{keys.RECONCILE}:seen"  # highest task id added to UNFINISHED
RESUME = f"{keys.RECONCILE}:resume"  # where the next sweep starts in UNFINISHED
SENT = f"{keys.RECONCILE}:sent"  # SENT:{action}:{task}: a re-drive sent recently
LOCK = f"{keys.RECONCILE}:lock"
FINISHED = f"{keys.RECONCILE}:finished"  # sorted set: task id -> head block number when it was seen final
HEADS = f"{keys.RECONCILE}:heads"  # JSON [[number, hash], ...]: the heads the last sweep read
# Blocks a task seen final is kept for a re-read after a reorg: twice Ethereum's finality (two epochs, 64
# blocks); a reorg deeper than that reverts finalized blocks, which no chain the fleet follows does.
REORG_HORIZON = 128


def _head_of(block: Mapping[str, Any]) -> tuple[int, str]:
    """A block's number and hash, as the sweep stores the heads it read."""
    return int(block["number"]), bytes(block["hash"]).hex()


@app.task(name=routing.RECONCILE, bind=True, max_retries=0, ignore_result=True)
def reconcile(self: Task, limit: int | None = None) -> dict[str, Any]:
    """One sweep over (at most ``limit``) unfinished tasks; returns what it did, by action."""
    rt = runtime()
    lock = rt.redis.lock(LOCK, timeout=max(60, 3 * rt.settings.reconcile_interval), blocking=False)
    if not lock.acquire():
        return {"status": "busy"}  # another sweep runs; the next beat comes soon
    try:
        done = Reconciler(rt, limit=limit or rt.settings.reconcile_batch).sweep()
    finally:
        with suppress(redis.exceptions.LockError):  # expired meanwhile: nothing to undo
            lock.release()
    if done:
        log.info("reconciler: %s", ", ".join(f"{k} {v}" for k, v in sorted(done.items())))
    return dict(done)


class Reconciler:
    def __init__(self, rt: Runtime, *, limit: int) -> None:
        self.rt = rt
        self.s = rt.session
        self.limit = limit
        self.redis = rt.redis
        self.done: Counter[str] = Counter()
        self.fleet = {a.address.lower(): a for a in rt.directory.all()}
        self.evaluator = self.s.evaluator.address.lower()
        self.ledger = WorkLedger(rt.redis, claim_ttl=rt.settings.claim_ttl)
        self.resend_after = int(max(30, 3 * rt.settings.reconcile_interval))  # seconds between re-drives
        self.now_block = 0  # the head's number when the sweep began

    def sweep(self) -> Counter[str]:
        inbox = TrainingInbox(self.redis, resend_after=self.rt.settings.training_resend_after)
        self.done.update(inbox.redeliver(app, limit=self.limit))  # before the chain: it needs Redis only
        w3 = self.s.client.w3
        latest = w3.eth.get_block("latest")
        heads = [_head_of(latest)]  # before any task is read: a reorg below it is seen by the next sweep
        self.now_block = heads[0][0]
        self._recheck_after_reorg(self.now_block)
        count = self.s.tasks.task_count()
        self._admit(count)
        self.now = chain_now(w3, latest)
        for task_id in self._batch():
            if task_id > count:  # a reorg removed it (the id may come back with another task)
                self.redis.zrem(UNFINISHED, task_id)
                continue
            self._one(task_id)
        heads.append(_head_of(w3.eth.get_block("latest")))  # after: every final status read is at or below it
        self.redis.set(HEADS, json.dumps(heads))
        return self.done

    def _canonical(self, number: int, block_hash: str) -> bool:
        try:
            return bytes(self.s.client.w3.eth.get_block(number)["hash"]).hex() == block_hash
        except BlockNotFound:  # the chain is shorter now
            return False

    def _recheck_after_reorg(self, head: int) -> None:
        """If a head the last sweep read is no longer canonical, every task seen final within the horizon
        goes back to the unfinished set (a reorg may have taken its completion or expiry away)."""
        self.redis.zremrangebyscore(FINISHED, "-inf", head - REORG_HORIZON)
        stored = self.redis.get(HEADS)
        if stored is None or all(self._canonical(int(n), str(h)) for n, h in json.loads(stored)):
            return
        ids = [int(member) for member in cast("list[bytes]", self.redis.zrange(FINISHED, 0, -1))]
        log.warning("reconciler: a reorg replaced a head of the last sweep; %s finished tasks read again", len(ids))
        if not ids:
            return
        with self.redis.pipeline() as pipe:
            pipe.zadd(UNFINISHED, {str(i): i for i in ids})
            pipe.zrem(FINISHED, *ids)
            pipe.delete(*(f"{SENT}:bids:{i}" for i in ids))  # the reorg may have taken bids away too
            pipe.execute()
        self.done["reorg_recheck"] += len(ids)

    def _admit(self, count: int) -> None:
        """Add new task ids to the unfinished set (bounded per sweep); after a reorg shortened the chain's
        list, start again from its end so that re-created ids come back in."""
        seen = int(self.redis.get(SEEN) or 0)
        if seen > count:
            seen = count
        upto = min(count, seen + self.limit)
        if upto > seen:
            self.redis.zadd(UNFINISHED, {str(i): i for i in range(seen + 1, upto + 1)})
        self.redis.set(SEEN, upto)

    def _batch(self) -> list[int]:
        start = int(self.redis.get(RESUME) or 0)
        ids = self._ids_from(start, self.limit)
        if len(ids) < self.limit and start > 0:  # wrap around to the oldest
            ids += [i for i in self._ids_from(0, self.limit - len(ids)) if i < start]
        self.redis.set(RESUME, ids[-1] + 1 if len(ids) >= self.limit else 0)
        return ids

    def _ids_from(self, start: int, count: int) -> list[int]:
        pairs = self.redis.zrangebyscore(UNFINISHED, start, "+inf", start=0, num=count, withscores=True)
        return [int(pair[1]) for pair in pairs]  # (member, score); the score is the task id

    def _one(self, task_id: int) -> None:
        task = self.s.tasks.get_task(task_id)
        if TaskStatus(task.status).final:
            with self.redis.pipeline() as pipe:
                pipe.zrem(UNFINISHED, task_id)
                pipe.zadd(FINISHED, {str(task_id): self.now_block})
                pipe.execute()
            if task.status != TaskStatus.CANCELLED:  # cancelled tasks had no auction
                self._bid_records(task_id, task)
            return
        if task.status == TaskStatus.OPEN:
            if self.now >= task.biddingDeadline:
                self._keeper(task_id, "finalize")
            return
        self._bid_records(task_id, task)
        if task.status == TaskStatus.ASSIGNED:
            if self.now > task.executionDeadline:
                self._keeper(task_id, "expire")
            elif task.assignee.lower() in self.fleet:
                self._execute(task_id, task.assignee)
        elif task.status == TaskStatus.SUBMITTED and task.evaluator.lower() == self.evaluator:
            if review.waiting(self.redis, task_id):
                self.done["waiting_review"] += 1
            elif self._once(f"evaluate:{task_id}"):
                app.send_task(
                    routing.EVALUATE, kwargs={"task_id": task_id}, queue=routing.EVALUATION, ignore_result=True
                )
                self.done["evaluate"] += 1

    def _execute(self, task_id: int, assignee: str) -> None:
        member = self.fleet[assignee.lower()]
        if self.ledger.attempts(f"execute:{task_id}:{assignee.lower()}") >= self.rt.settings.execute_attempts:
            return  # given up: it expires at its deadline
        if self.ledger.claim_ttl_left(f"execute:{task_id}"):
            return  # a live worker is on it
        if self._once(f"execute:{task_id}"):
            app.send_task(
                routing.EXECUTE,
                kwargs={"agent": member.address, "task_id": task_id},
                queue=member.queue,
                ignore_result=True,
            )
            self.done["execute"] += 1

    def _keeper(self, task_id: int, action: str) -> None:
        if self._once(f"{action}:{task_id}"):
            name = routing.FINALIZE if action == "finalize" else routing.EXPIRE
            app.send_task(name, kwargs={"task_id": task_id}, queue=routing.KEEPER, ignore_result=True)
            self.done[action] += 1

    def _once(self, what: str) -> bool:
        """True at most once per ``resend_after`` seconds for ``what`` (across concurrent sweeps)."""
        return bool(self.redis.set(f"{SENT}:{what}", 1, nx=True, ex=self.resend_after))

    def _our_bids(self, task_id: int, task: Any) -> dict[str, int]:
        """Our agents' bids on the task: in the BidPlaced logs (open mode) or in the bid book (sealed)."""
        if AuctionMode(task.mode) == AuctionMode.SEALED:
            placed = {bid.agent.lower(): bid.amount for bid in BidBook(self.redis).bids(task_id)}
        else:
            placed = bids_placed(self.s, task_id)
        return {agent: amount for agent, amount in placed.items() if agent in self.fleet}

    def _bid_records(self, task_id: int, task: Any) -> None:
        """Once the auction is over, learning records match the chain's bids: every bid of ours has one,
        no record lacks a bid."""
        if not self.fleet or self.redis.exists(f"{SENT}:bids:{task_id}"):
            return
        amounts = self._our_bids(task_id, task)
        records = self.redis.mget([keys.bid_state(task_id, agent) for agent in self.fleet])
        for agent, record in zip(self.fleet, records, strict=True):
            amount = amounts.get(agent)
            if amount is not None and record is None:
                restored = BidRecord(
                    state=[0.0] * STATE_SIZE,
                    action=nearest_action(amount / max(1, int(task.reward))),
                    reward_wei=int(task.reward),
                    amount_wei=amount,
                    reconstructed=True,
                )
                store_bid_state(self.redis, task_id, agent, restored)
                self.done["bid_record_restored"] += 1
            elif amount is None and record is not None:
                drop_bid_state(self.redis, task_id, agent)
                self.done["bid_record_dropped"] += 1
        self.redis.set(f"{SENT}:bids:{task_id}", 1, ex=7 * 24 * 3600)  # settled once the auction is over
