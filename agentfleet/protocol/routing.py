"""Celery task names and queues: how the listener, the keeper and the CLI address work by name.

The workers and the trainer register these names; everyone else sends by name (``app.send_task``), so no
process imports another's code to give it work. Queues: one per capability profile (``agent.research`` ...,
derived from the seed's agent types) and three service queues.
"""

from __future__ import annotations

import zlib

from agentfleet.profiles import AGENT_TYPES

# --- task names ------------------------------------------------------------------------------------------
CONSIDER = "workers.tasks.consider"  # (agent, task_id, event): evaluate a new task and maybe bid
EXECUTE = "workers.tasks.execute"  # (agent, task_id, event): run a won task, submit the result hash
EVALUATE = "workers.tasks.evaluate"  # (task_id, event): score a submitted result, complete the task
DELIVER = "workers.tasks.deliver_message"  # (agent, event): a MessageHub message into the agent's inbox
FINALIZE_DUE = "workers.tasks.finalize_due"  # (limit): keeper sweep over auctions past their deadline
FINALIZE = "workers.tasks.finalize"  # (task_id): keeper finalizes one auction
EXPIRE = "workers.tasks.expire"  # (task_id): keeper expires one task past its execution window
RECONCILE = "workers.tasks.reconcile"  # (): re-drive stuck work from chain state (beat)
RECORD_OUTCOME = "trainer.tasks.record_outcome"  # (agent, task_id, outcome, event): learn from a settled bid
RECORD_CLEARING = "trainer.tasks.record_clearing"  # (task_id, event): a finalized auction's price into the market

TASK_MODULES = ("workers.tasks", "workers.keeper", "workers.reconcile", "trainer.tasks")  # where they are registered

# --- queues ------------------------------------------------------------------------------------------------
CAPABILITY_PROFILES: tuple[str, ...] = tuple(dict.fromkeys(agent.queue for agent in AGENT_TYPES))
EVALUATION = "evaluation"
TRAINING = "training"
KEEPER = "keeper"
SERVICE_QUEUES = (EVALUATION, TRAINING, KEEPER)


def training_queue(agent: str, shards: int) -> str:
    """The training queue of an agent's outcomes: ``training`` with one shard, else ``training.<shard>``, the
    shard a stable hash of the address (the same in every process and run, unlike Python's ``hash``)."""
    if shards <= 1:
        return TRAINING
    return shard_queue(shard_of(agent, shards))


def shard_queue(shard: int) -> str:
    """The queue of one trainer shard's outcomes (with more than one shard)."""
    return f"{TRAINING}.{shard}"


def shard_of(agent: str, shards: int) -> int:
    """The trainer shard that learns this agent: CRC-32 of the lower-case address, stable across processes."""
    return zlib.crc32(agent.lower().encode()) % max(1, shards)


def training_queues(shards: int) -> tuple[str, ...]:
    """Every training queue for this many shards (``training`` itself always exists: hand-sent outcomes)."""
    return (TRAINING,) if shards <= 1 else (TRAINING, *(shard_queue(i) for i in range(shards)))


def agent_queue(profile: str) -> str:
    """The queue an agent of this capability profile takes its consider/execute work from."""
    return f"agent.{profile}"


AGENT_QUEUES: tuple[str, ...] = tuple(agent_queue(p) for p in CAPABILITY_PROFILES)
WORKER_QUEUES: tuple[str, ...] = (*AGENT_QUEUES, EVALUATION, KEEPER)  # what an agent worker consumes
ALL_QUEUES: tuple[str, ...] = (*AGENT_QUEUES, *SERVICE_QUEUES)

ROUTES: dict[str, dict[str, str]] = {  # consider/execute: the sender picks the agent's queue
    EVALUATE: {"queue": EVALUATION},
    FINALIZE_DUE: {"queue": KEEPER},
    FINALIZE: {"queue": KEEPER},
    EXPIRE: {"queue": KEEPER},
    RECONCILE: {"queue": KEEPER},
    RECORD_OUTCOME: {"queue": TRAINING},
    RECORD_CLEARING: {"queue": TRAINING},
}
