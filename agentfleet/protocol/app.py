"""The fleet's Celery application: one app for the workers, the trainer, the listener and the CLI.

It is bare on purpose: configuration (``agentfleet.protocol.celeryconfig``) and the broker-restart fix, no
signal handlers. Processes that run tasks add theirs (``agentfleet.worker_metrics``, imported by the task
modules); the listener and the CLI only send by name. ``celery -A workers ...`` finds this app through the
``workers`` package.
"""

from __future__ import annotations

from functools import wraps
from typing import Any

import redis.exceptions
from celery import Celery
from celery.signals import setup_logging
from kombu.transport import redis as kombu_redis

from agentfleet.logs import configure_logging
from agentfleet.protocol.routing import TASK_MODULES
from agentfleet.settings import get_settings


def survive_broker_restarts() -> None:
    """Make a channel of a torn-down broker connection fail with a connection error, not an AttributeError.

    Why: with celery 5.7.0 / kombu 5.7.0 (the latest releases; no fixed version exists), a Redis restart makes
    celery close the broken connection while its parts still hold that connection's channels. A channel used
    afterwards (the late ack of a task that was running, a stale poller callback) rebuilds its Redis pool from
    ``connection.client``, which is gone, and the worker exits with
    ``Unrecoverable error: AttributeError("'NoneType' object has no attribute 'hostname'")`` (kombu#582, the same
    trace since kombu 3). As a redis ``ConnectionError`` it is one more broker error that celery already survives:
    it reconnects, or logs "Couldn't ack" and the message comes back after the visibility timeout.
    """
    original = kombu_redis.Channel._connparams
    if getattr(original, "survives_restarts", False):
        return

    @wraps(original)
    def _connparams(self: kombu_redis.Channel, asynchronous: bool = False) -> dict[str, Any]:
        transport = self.connection
        if transport is None or transport.client is None:
            raise redis.exceptions.ConnectionError("this channel's broker connection was closed (Redis restarted?)")
        return original(self, asynchronous=asynchronous)

    _connparams.survives_restarts = True  # type: ignore[attr-defined]
    kombu_redis.Channel._connparams = _connparams  # type: ignore[method-assign]


survive_broker_restarts()
app = Celery("agentfleet", include=list(TASK_MODULES))
app.config_from_object("agentfleet.protocol.celeryconfig")


@setup_logging.connect
def _logging(**_kwargs: Any) -> None:
    """Celery's own logging setup is replaced by the fleet's (text or JSON, AGENTFLEET_LOG_FORMAT)."""
    configure_logging(get_settings())
