"""Every Redis key the fleet's processes share, built in one place.

Why one module: the listener writes what the workers read (events, reverted marks, the bid book), the
workers write what the trainer reads (bid-state records), and the CLI reads all of it. A key spelled in two
places drifts; a builder here is the only spelling. Keys are ``agentfleet:{area}:...``; the comment on each
says who writes it and its shape.
"""

from __future__ import annotations

ROOT = "agentfleet"


def _key(*parts: object) -> str:
    return ":".join((ROOT, *(str(part) for part in parts)))


def text(value: bytes | str) -> str:
    """Redis replies are bytes unless the client decodes; accept both."""
    return value.decode() if isinstance(value, bytes) else value


# --- listener ------------------------------------------------------------------------------------------
EVENTS = _key("events")  # stream: every dispatched event (capped)
DISPATCH = _key("dispatch")  # {DISPATCH}:{work key}: two-phase send state of one Celery message
LISTENER = _key("listener")  # {LISTENER}:{chain}:checkpoint|blocks|events:{n}
REVERTED = _key("reverted")  # {REVERTED}:{event id}: an event a reorg removed
LISTENER_BIDS = _key("listener", "bids")  # hash per task: bidder -> amount, as the listener saw them


def reverted(event_id: object) -> str:
    return f"{REVERTED}:{event_id}"


def listener_bids(task_id: int) -> str:
    return f"{LISTENER_BIDS}:{task_id}"


# --- chain client ---------------------------------------------------------------------------------------
NONCE = _key("nonce")  # {NONCE}:{chain}:{address}: next nonce; ...:lock its lock


# --- workers ----------------------------------------------------------------------------------------------
WORK = _key("work")  # {WORK}:done|claim|attempts:{work key}: the work ledger
FAILURES = _key("failures")  # stream: tasks that ended in FAILURE
DIRECTORY = _key("fleet", "agents")  # hash: address -> the fleet's agent entry (queue, HD index)
REVIEW = _key("review")  # hash: task id -> why it waits for a human score
KEEPER_FIRST_OPEN = _key("keeper", "first_open")  # where the keeper's next finalize sweep starts
RECONCILE = _key("reconcile")  # {RECONCILE}:unfinished|finished|heads|seen|resume|lock|sent:{action}:{task}
RATE_LIMIT = _key("ratelimit")  # {RATE_LIMIT}:{name}: the LLM token bucket


def results(digest_hex: str) -> str:
    """A result text, content-addressed by the sha256 the chain holds."""
    return _key("results", digest_hex)


def task_text(digest_hex: str) -> str:
    """A task text, content-addressed by the keccak256 the TaskCreated event holds."""
    return _key("tasktext", digest_hex)


def task_content(task_id: int) -> str:
    return _key("taskcontent", task_id)  # the task's content hash (hex), from its TaskCreated event


def bid_book(task_id: int) -> str:
    return _key("bidbook", task_id)  # stream: agent, bid (JSON signed sealed bid); one entry per agent


def usage_of_agent(agent: str) -> str:
    return _key("usage", "agent", agent.lower())  # hash: prompt_tokens, completion_tokens, cost_usd, {role}_usd/_calls


def usage_of_task(task_id: int) -> str:
    return _key("usage", "task", task_id)


def inbox(agent: str) -> str:
    return _key("inbox", agent.lower())  # list: MessageHub messages delivered to the agent (still encrypted)


# --- bidding and learning -----------------------------------------------------------------------------
def bid_state(task_id: int, agent: str) -> str:
    return _key("bidstate", task_id, agent.lower())  # JSON: what the agent saw when it bid


def recent_bids(agent: str) -> str:
    return _key("recent", agent.lower())  # list: 1 won / 0 lost, newest first


def market(tag: str) -> str:
    return _key("market", tag)  # list: JSON clearings of the tag's settled auctions, newest first


def moves(tag: str, agent: str) -> str:
    return _key("moves", agent.lower(), tag)  # list: reputation moves of the agent's finished tasks of the tag


def scores(tag: str, agent: str) -> str:
    return _key("scores", agent.lower(), tag)  # list: scores of the agent's completed tasks of the tag, newest first


# hash: lower-case agent -> reputation now, every agent's (not only the fleet's), from ReputationChanged (listener)
REPUTATIONS = _key("reputations")


def usage_of_bid(task_id: int, agent: str) -> str:
    return _key("usage", "bid", task_id, agent.lower())  # hash: one agent's LLM tokens and cost on one task


def trainer_done(outcome_id: str) -> str:
    return _key("trainer", "done", outcome_id)  # the outcome was learned from (or had nothing to teach)


TRAINING_INBOX = _key("trainer", "inbox")  # hash (and ...:due sorted set): training messages not yet settled


def trainer_counted(outcome_id: str) -> str:
    return _key("trainer", "recent", outcome_id)  # the outcome counted in the recent win rate


TRAINER_LIVE = f"{ROOT}:trainer:live"  # sorted set: trainer name -> Redis time (ms) of its last heartbeat


def trainer_shard(shard: int) -> str:
    """A trainer shard's lease: the token of the trainer claim that holds it, with a PX expiry."""
    return f"{ROOT}:trainer:shard:{shard}"


def listener_checkpoint(chain_id: int, prefix: str = LISTENER) -> str:
    """The listener's checkpoint on this chain (JSON: number and hash of the last block it acted on)."""
    return f"{prefix}:{chain_id}:checkpoint"
