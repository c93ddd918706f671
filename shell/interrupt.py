"""Ctrl-C for a command that runs a whole local fleet in one process (the demo).

The first Ctrl-C raises KeyboardInterrupt, so the command stops its worker, listener and services in order
(under a second as a rule). That unwinding starts wherever the main thread happened to be, though: a lock
taken and never released by the code it interrupted, or a worker thread busy in a task, can hold it far
longer, and someone who pressed Ctrl-C expects the prompt back with nothing left running. So the first
Ctrl-C also arms a watchdog: after ``grace`` seconds, or at a second Ctrl-C, every service the process
started is killed, the threads' stacks go to the log (why it was slow) and the process exits at once.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import threading
from pathlib import Path
from types import FrameType, TracebackType

from shell.services import kill_started_services


class Interrupts:
    """``with Interrupts(log=...) as interrupts:`` handles SIGINT as above; ``interrupts.seen`` says whether it came."""

    def __init__(self, *, grace: float = 20.0, log: Path | None = None) -> None:
        self.grace = grace  # seconds the orderly stop may take after the first Ctrl-C
        self.log = log  # where the threads' stacks go when the stop is forced
        self.seen: list[int] = []
        self._timer: threading.Timer | None = None
        self._previous: object = None

    def __enter__(self) -> Interrupts:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]

    def raise_if_seen(self) -> None:
        """Raise KeyboardInterrupt again if one came: Python drops one raised inside a finalizer."""
        if self.seen:
            raise KeyboardInterrupt

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.seen.append(signum)
        if len(self.seen) > 1:
            self.force("a second Ctrl-C")
        self._timer = threading.Timer(self.grace, self.force, args=(f"still stopping {self.grace:g} s after Ctrl-C",))
        self._timer.daemon = True
        self._timer.start()
        raise KeyboardInterrupt

    def force(self, why: str) -> None:
        """Kill what is left, leave the stacks in the log, exit 0 now (the user asked to stop; nothing is lost
        that the demo's throwaway chain and Redis held)."""
        killed = kill_started_services()
        if self.log is not None:
            try:
                with self.log.open("a") as out:
                    out.write(f"\nforced exit ({why}); the threads were at:\n")
                    out.flush()
                    faulthandler.dump_traceback(out, all_threads=True)
            except OSError:
                pass
        os.write(1, f"\ninterrupted ({why}): killed the {killed} service(s) left; nothing is left running\n".encode())
        os._exit(0)
