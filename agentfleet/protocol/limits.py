"""Limits the contracts enforce (``library Limits`` in Common.sol), mirrored so the fleet refuses early.

A test parses Common.sol and fails if a value here differs from the contract's.
"""

from __future__ import annotations

MAX_NAME_BYTES = 64
MAX_CAPABILITY_BYTES = 32
MAX_CAPABILITIES = 16
MAX_TAGS = 8
MAX_TAG_BYTES = 32
MAX_DESCRIPTION_BYTES = 2048
MAX_URI_BYTES = 256
MAX_BIDS_PER_TASK = 64
MAX_PAYLOAD_BYTES = 4096
MAX_TOPIC_BYTES = 64
MAX_ACTION_TYPE_BYTES = 32
PASS_SCORE = 50
FAILURE_PENALTY = 10  # reputation points a failed or expired task costs
INITIAL_REPUTATION = 50
REPUTATION_STEP = 5  # a passed task moves reputation by (score - PASS_SCORE) // REPUTATION_STEP
MAX_REWARD = 2**80 - 1  # rewards and prices are stored in 80 bits
REVEAL_WINDOW = 3600  # seconds after a sealed auction's deadline in which the requester finalizes with bids
