"""One polling helper for tests and benchmarks: wait until a condition holds, or fail saying what did not happen."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    predicate: Callable[[], object],
    timeout: float,
    what: str | Callable[[], str] = "",
    *,
    interval: float = 0.05,
) -> None:
    """Poll ``predicate()`` every ``interval`` seconds until it is truthy; after ``timeout`` seconds raise
    ``AssertionError("not within {timeout} s: {what}")``. ``what`` may be a zero-argument callable (evaluated
    only on failure), so a caller can attach a log tail or the state it saw last."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            message = what() if callable(what) else what
            raise AssertionError(f"not within {timeout} s: {message}")
        time.sleep(interval)
