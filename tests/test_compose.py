"""docker-compose.yml, checked offline (no Docker engine here): the compose-spec schema, a scalable worker
service, the optional RabbitMQ broker behind its profile, and every service's command started as a local process
against local redis and anvil."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from shell.services import RedisServer, free_port
from testkit.chain import clean_env
from testkit.wait import wait_until

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
COMPOSE = ROOT / "docker-compose.yml"


def services() -> dict[str, Any]:
    return YAML(typ="safe").load(COMPOSE.read_text())["services"]  # type: ignore[no-any-return]


def test_compose_file_passes_the_compose_spec_schema() -> None:
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_worker_service_scales_and_secrets_are_not_hard_coded() -> None:
    spec = services()
    assert {"redis", "chain", "deploy", "listener", "worker", "trainer", "beat", "flower", "dashboard"} <= set(spec)
    worker = spec["worker"]
    assert "container_name" not in worker and "ports" not in worker  # `--scale worker=5` needs both absent
    assert "healthcheck" in worker and worker["restart"] == "unless-stopped"
    assert "--requirepass" in spec["redis"]["command"] and "--appendonly" in spec["redis"]["command"]
    assert spec["flower"]["ports"] == ["127.0.0.1:5555:5555"]  # bound to the host's loopback only
    assert any("basic-auth" in part for part in spec["flower"]["command"])
    assert spec["trainer"]["command"][spec["trainer"]["command"].index("-P") + 1] == "solo"
    text = COMPOSE.read_text()
    assert "sk-" not in text and "${OPENAI_API_KEY" in text


def test_dashboard_service_requires_its_password_and_stays_on_the_hosts_loopback() -> None:
    dashboard = services()["dashboard"]
    command = dashboard["command"]
    assert command[:2] == ["agentfleet", "dashboard"]
    assert command[command.index("--address") + 1] == "0.0.0.0"  # inside the container; the port is published
    assert dashboard["ports"] == ["127.0.0.1:8600:8600"]  # on the host's loopback only
    password = dashboard["environment"]["AGENTFLEET_DASHBOARD_PASSWORD"]
    assert password.startswith("${AGENTFLEET_DASHBOARD_PASSWORD:?")  # compose refuses to run without one
    assert "/healthz" in " ".join(dashboard["healthcheck"]["test"])
    assert all(volume.endswith(":ro") for volume in dashboard["volumes"])  # it reads, never writes


def test_rabbitmq_is_an_optional_broker_behind_its_profile() -> None:
    compose = YAML(typ="safe").load(COMPOSE.read_text())
    spec = compose["services"]
    rabbitmq = spec["rabbitmq"]
    assert rabbitmq["profiles"] == ["rabbitmq"]  # `docker compose up` alone runs on Redis
    assert [s for s, v in spec.items() if "profiles" in v] == ["rabbitmq"]  # every other service always runs
    image, tag = rabbitmq["image"].split(":")
    assert image == "rabbitmq" and tag[0].isdigit() and tag.count(".") == 2  # a pinned release, never latest
    assert "rabbitmq-diagnostics" in rabbitmq["healthcheck"]["test"]
    assert rabbitmq["hostname"] and "rabbitmq-data:/var/lib/rabbitmq" in rabbitmq["volumes"]
    assert rabbitmq["environment"]["RABBITMQ_DEFAULT_PASS"] == "${RABBITMQ_PASSWORD:-change-me}"
    assert all(port.startswith("127.0.0.1:") for port in rabbitmq.get("ports", []))  # host loopback only
    assert "rabbitmq-data" in compose["volumes"]
    for name in ("listener", "worker", "trainer", "beat", "flower", "dashboard"):
        assert spec[name]["environment"]["AGENTFLEET_BROKER_URL"] == "${AGENTFLEET_BROKER_URL:-}"  # unset: Redis
        waits = spec[name]["depends_on"]["rabbitmq"]
        assert waits == {"condition": "service_healthy", "required": False}  # only with the profile on


def local(command: list[str], replacements: dict[str, str]) -> list[str]:
    """A compose command as a local command line: our venv's executables, local hosts and ports."""
    out = []
    for part in command:
        if part in {"python", "celery", "agentfleet"}:
            part = sys.executable if part == "python" else str(BIN / part)
        for old, new in replacements.items():
            part = part.replace(old, new)
        out.append(part)
    return out


def up(check: Callable[[], object], proc: subprocess.Popen[bytes]) -> Callable[[], bool]:
    """``check()`` as a wait predicate for the service ``proc`` runs: an OSError (not listening yet) is "not
    yet", and the service exiting with an error fails the wait at once."""

    def predicate() -> bool:
        assert proc.poll() is None or proc.returncode == 0, f"exited with {proc.returncode}"
        try:
            return bool(check())
        except OSError:
            return False

    return predicate


@pytest.mark.anvil
@pytest.mark.slow
def test_every_service_command_runs_locally(tmp_path: Path) -> None:
    spec = services()
    redis_server = RedisServer.start(password="change-me")
    anvil_port = free_port()
    flower_port, metrics_port, dashboard_port = free_port(), free_port(), free_port()
    worker_metrics, trainer_metrics = free_port(), free_port()
    replacements = {
        "0.0.0.0": "127.0.0.1",
        "8545": str(anvil_port),
        "5555": str(flower_port),
        "8600": str(dashboard_port),
        "9102": str(worker_metrics),
        "9103": str(trainer_metrics),
        "/tmp/celerybeat-schedule": str(tmp_path / "beat-schedule"),
        "${FLOWER_AUTH:-admin:change-me}": "admin:change-me",
    }
    env = clean_env()
    env.update(
        {
            "AGENTFLEET_RPC_URLS": f"http://127.0.0.1:{anvil_port}",
            "AGENTFLEET_REDIS_URL": f"redis://:change-me@127.0.0.1:{redis_server.port}/0",
            "AGENTFLEET_CONTRACT_ADDRESSES_PATH": str(tmp_path / "contract_addresses.json"),
            "AGENTFLEET_MODELS_DIR": str(tmp_path / "models"),
            "AGENTFLEET_LISTENER_METRICS_PORT": str(metrics_port),
        }
    )
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str, **extra: str) -> subprocess.Popen[bytes]:
        own = {
            k: replacements.get(str(v), str(v))
            for k, v in (spec[name].get("environment") or {}).items()
            if k == "AGENTFLEET_WORKER_METRICS_PORT"
        }  # the service's own port, moved to a free one
        proc = subprocess.Popen(
            local(spec[name]["command"], replacements),
            cwd=ROOT,
            env={**env, **own, **extra},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(proc)
        return proc

    try:
        chain = start("chain")
        wait_until(up(lambda: _port_open(anvil_port), chain), 60, "chain did not come up", interval=0.2)
        deploy = start("deploy")
        assert deploy.wait(timeout=120) == 0
        assert (tmp_path / "contract_addresses.json").exists()
        listener = start("listener")
        listening = up(lambda: b"agentfleet_listener" in _get(f"http://127.0.0.1:{metrics_port}/metrics"), listener)
        wait_until(listening, 60, "listener did not come up", interval=0.2)
        from testkit.listener import celery_app

        app = celery_app(env["AGENTFLEET_REDIS_URL"])  # its own app: the shared one stays on the suite's Redis
        worker, trainer = start("worker"), start("trainer")
        pinged = up(lambda: len(app.control.ping(timeout=1.0)) >= 2, worker)
        wait_until(pinged, 90, "worker and trainer did not answer a ping", interval=0.2)
        for port in (worker_metrics, trainer_metrics):  # each serves its own endpoint (empty until a task ran)
            serving = up(lambda port=port: isinstance(_get(f"http://127.0.0.1:{port}/metrics"), bytes), worker)  # type: ignore[misc]
            wait_until(serving, 60, f"no metrics on port {port}", interval=0.2)
        beat = start("beat")
        flower = start("flower")
        auth = {"Authorization": "Basic " + base64.b64encode(b"admin:change-me").decode()}
        healthy = up(lambda: _get(f"http://127.0.0.1:{flower_port}/healthcheck", auth) == b"OK", flower)
        wait_until(healthy, 60, "flower did not come up", interval=0.2)
        with pytest.raises(urllib.error.HTTPError, match="401"):
            _get(f"http://127.0.0.1:{flower_port}/workers")  # basic auth guards the pages
        dashboard = start("dashboard", AGENTFLEET_DASHBOARD_PASSWORD="dash-secret")
        answered = up(
            lambda: _get(f"http://127.0.0.1:{dashboard_port}/healthz") == b'{"redis":true,"chain":true}', dashboard
        )
        wait_until(answered, 60, "the dashboard did not come up", interval=0.2)
        with pytest.raises(urllib.error.HTTPError, match="401"):
            _get(f"http://127.0.0.1:{dashboard_port}/")  # basic auth guards the pages
        login = {"Authorization": "Basic " + base64.b64encode(b"operator:dash-secret").decode()}
        assert b"Market" in _get(f"http://127.0.0.1:{dashboard_port}/", login)
        time.sleep(2)
        assert beat.poll() is None and trainer.poll() is None and listener.poll() is None and dashboard.poll() is None
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        redis_server.stop()


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _get(url: str, headers: dict[str, str] | None = None) -> bytes:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=3) as answer:
        return answer.read()  # type: ignore[no-any-return]
