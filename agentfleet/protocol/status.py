"""Task statuses and auction modes as the TaskManager contract defines them (``ITaskManager.Status`` and
``ITaskManager.Mode`` in Common.sol).

A test reads the enums from the Solidity source and the ABI's ``internalType`` and fails if this copy drifts.
"""

from __future__ import annotations

from enum import IntEnum


class TaskStatus(IntEnum):
    NONE = 0
    OPEN = 1
    ASSIGNED = 2
    SUBMITTED = 3
    COMPLETED = 4
    FAILED = 5
    CANCELLED = 6
    EXPIRED = 7

    @property
    def final(self) -> bool:
        """Nothing more happens to a task in a final status (escrow paid out or refunded)."""
        return self >= TaskStatus.COMPLETED


FINAL_STATUSES = frozenset(s for s in TaskStatus if s.final)


class AuctionMode(IntEnum):
    """How a task's auction runs, chosen by the requester at creation."""

    OPEN = 0  # bids are transactions; the contract keeps the running best
    SEALED = 1  # bids are EIP-712 signatures in the task's bid book; the requester submits them at finalize

    @property
    def label(self) -> str:
        return self.name.lower()
