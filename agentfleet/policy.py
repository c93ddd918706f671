"""Hard policy bounds: whatever an LLM or a strategy proposes, nothing leaves these limits.

Why one module: task text is untrusted input and LLM output is untrusted output. Every number that goes on
chain (bid amounts, scores) and every text that is stored (results) passes through here, so one reading of
this file tells what the worst prompt injection can achieve: a bid inside [MIN_BID_FRACTION, 1] x reward,
a score inside 0..100, a result of at most MAX_RESULT_BYTES, and no configured secret in any output.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Annotated, SupportsFloat, cast

from pydantic import AfterValidator
from web3 import Web3

MIN_BID_FRACTION = 0.05  # of the reward
MAX_BID_FRACTION = 1.0  # the contract refuses more than the reward anyway
MAX_RESULT_BYTES = 64 * 1024
MAX_TASK_TEXT_CHARS = 4000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clamp_fraction(value: object) -> float:
    """A bid fraction inside policy bounds; NaN, infinities and non-numbers become the lowest bid (the
    cheapest mistake for the requester, and one the agent's profile can still refuse to place)."""
    try:
        number = float(cast(SupportsFloat, value))
    except (TypeError, ValueError):
        return MIN_BID_FRACTION
    if math.isnan(number) or math.isinf(number):
        return MIN_BID_FRACTION
    return min(MAX_BID_FRACTION, max(MIN_BID_FRACTION, number))


def bid_amount(reward_wei: int, fraction: object) -> int:
    """Wei to bid for ``reward_wei`` at ``fraction``, always inside [min, max] x reward and >= 1 wei."""
    amount = int(reward_wei * clamp_fraction(fraction))
    return max(1, min(reward_wei, amount))


def clamp_score(value: object) -> int:
    try:
        number = float(cast(SupportsFloat, value))
    except (TypeError, ValueError):
        return 0
    if math.isnan(number):
        return 0
    return round(min(100.0, max(0.0, number)))  # clamp first: round(inf) raises


def clean_task_text(text: str) -> str:
    """Untrusted task text as it may enter a prompt: no control characters, bounded length."""
    return _CONTROL.sub(" ", text)[:MAX_TASK_TEXT_CHARS]


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Remove every configured secret (and long fragments of it) from a text before it is stored or sent."""
    for secret in secrets:
        if secret and len(secret) >= 6:
            text = text.replace(secret, "[redacted]")
    return text


def limit_result(text: str) -> str:
    """A result text cut to MAX_RESULT_BYTES of UTF-8 (never splitting a character)."""
    data = text.encode("utf-8")
    if len(data) <= MAX_RESULT_BYTES:
        return text
    return data[:MAX_RESULT_BYTES].decode("utf-8", errors="ignore")


def checksum_address(value: str) -> str:
    """An address from a message or a CLI argument, checksummed; anything else is a clear error."""
    if not isinstance(value, str) or not Web3.is_address(value):
        raise ValueError(f"not an Ethereum address: {value!r}")
    return Web3.to_checksum_address(value)


Address = Annotated[str, AfterValidator(checksum_address)]
