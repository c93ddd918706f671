"""Tasks as the lean contracts take them: the text off chain (content-addressed), tags as ids, a mode.

Why here: the TaskManager stores only what it enforces. The task text is identified by its keccak256
``content hash``; the fleet publishes it in the TaskCreated event (the contract checks it against the hash)
and keeps it in its content store; tags travel as 32-byte ids (the UTF-8 text, left-aligned, so they read
back as text). Every process that creates or reads a task goes through these helpers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.logs import DISCARD

from agentfleet.chain.session import ChainSession
from agentfleet.protocol import limits
from agentfleet.protocol.status import AuctionMode


def tag_id(text: str) -> bytes:
    """The 32-byte id of a tag or capability (``Ids.fromText`` in Common.sol)."""
    data = text.encode("utf-8")
    if not data:
        raise ValueError("a tag cannot be empty")
    if len(data) > limits.MAX_TAG_BYTES:
        raise ValueError(f"tag {text[:40]!r} is {len(data)} bytes; at most {limits.MAX_TAG_BYTES}")
    if data[0] == 0:
        raise ValueError("a tag cannot start with a zero byte")
    return data.ljust(32, b"\0")


def tag_text(tag: bytes | str) -> str:
    """The text of a tag id (bytes or 0x hex); bytes that are not UTF-8 are shown replaced."""
    raw = bytes.fromhex(tag[2:] if tag.startswith("0x") else tag) if isinstance(tag, str) else bytes(tag)
    return raw.rstrip(b"\0").decode("utf-8", errors="replace")


def content_hash(text: str) -> bytes:
    """keccak256 of the UTF-8 text: what TaskManager checks the published text against."""
    return bytes(Web3.keccak(text=text))


@dataclass(frozen=True)
class TaskSpec:
    """A task as a requester posts it."""

    text: str
    tags: tuple[str, ...]
    reward_wei: int
    bidding_deadline: int  # unix seconds (the chain's clock)
    execution_duration: int  # seconds from assignment
    evaluator: str
    mode: AuctionMode = AuctionMode.OPEN
    content_uri: str = ""  # where the text can be fetched when it is not published in the event
    publish_text: bool = True  # put the text in the TaskCreated event (about 8 gas per byte)


def post_task(session: ChainSession, requester: LocalAccount, spec: TaskSpec) -> int:
    """Create the task on chain; returns its id (read from the receipt's TaskCreated event)."""
    text_bytes = len(spec.text.encode("utf-8"))
    if spec.publish_text and text_bytes > limits.MAX_DESCRIPTION_BYTES:
        raise ValueError(f"task text is {text_bytes} bytes; at most {limits.MAX_DESCRIPTION_BYTES} can be published")
    if not spec.text.strip():
        raise ValueError("task text is empty")
    if len(spec.tags) > limits.MAX_TAGS:
        raise ValueError(f"{len(spec.tags)} tags; at most {limits.MAX_TAGS}")
    receipt = session.tasks.create_task(
        requester,
        content_hash(spec.text),
        spec.content_uri,
        spec.text if spec.publish_text else "",
        [tag_id(t) for t in spec.tags],
        spec.bidding_deadline,
        spec.execution_duration,
        Web3.to_checksum_address(spec.evaluator),
        int(spec.mode),
        value=spec.reward_wei,
    )
    return task_id_of(session, receipt)


def task_id_of(session: ChainSession, receipt: Any) -> int:
    events = session.tasks.contract.events.TaskCreated().process_receipt(receipt, errors=DISCARD)
    if not events:
        raise ValueError("the receipt has no TaskCreated event")
    return int(events[0]["args"]["taskId"])


def created_event(session: ChainSession, task_id: int) -> dict[str, Any] | None:
    """The TaskCreated event of ``task_id`` read back from the chain's logs (None when the node has no such
    log: a reorg removed the task, or the node pruned its logs)."""
    logs = _task_logs(session, session.tasks.contract.events.TaskCreated(), task_id)
    return dict(logs[-1]["args"]) if logs else None


def result_event(session: ChainSession, task_id: int) -> dict[str, Any] | None:
    """The ResultSubmitted event of ``task_id`` (its result hash and URI live only there)."""
    logs = _task_logs(session, session.tasks.contract.events.ResultSubmitted(), task_id)
    return dict(logs[-1]["args"]) if logs else None


def bids_placed(session: ChainSession, task_id: int) -> dict[str, int]:
    """The open auction's bids on the canonical chain, agent (lower case) -> amount: one ``eth_getLogs``."""
    logs = _task_logs(session, session.auction.contract.events.BidPlaced(), task_id)
    return {str(log["args"]["agent"]).lower(): int(log["args"]["amount"]) for log in logs}


def _task_logs(session: ChainSession, event: Any, task_id: int) -> list[Any]:
    return list(event.get_logs(from_block=_first_block(session), argument_filters={"taskId": task_id}))


def _first_block(session: ChainSession) -> int:
    deployment = session.client.deployment
    return deployment.deployment_block if deployment is not None else 0
