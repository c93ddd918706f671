"""Task statuses as the TaskManager contract defines them (``ITaskManager.Status`` in Common.sol).

A test reads the enum from the Solidity source and the ABI's ``internalType`` and fails if this copy drifts.
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
