"""The fleet's Celery application: one app for the workers, the trainer, the listener and the CLI.

It is bare on purpose: configuration (``agentfleet.protocol.celeryconfig``), the broker-restart fix, two RabbitMQ
fixes (delayed delivery for every queue, a task base class that keeps retries on their queue), no signal
handlers. Processes that run tasks add theirs (``agentfleet.worker_metrics``, imported by the task modules); the
listener and the CLI only send by name. ``celery -A workers ...`` finds this app through the ``workers`` package.
"""

from __future__ import annotations

import math
import re
from functools import wraps
from typing import Any

import redis.exceptions
from celery import Celery, Task
from celery.signals import setup_logging
from celery.worker.consumer import delayed_delivery
from kombu import Connection, Queue
from kombu.transport import redis as kombu_redis
from kombu.transport.native_delayed_delivery import MAX_NUMBER_OF_BITS_TO_USE

from agentfleet.logs import configure_logging
from agentfleet.protocol.routing import TASK_MODULES
from agentfleet.settings import get_settings

# The countdown in binary, one word a bit, that native delayed delivery puts before a routing key.
_DELAY_PREFIX = re.compile(rf"^(?:[01]\.){{{MAX_NUMBER_OF_BITS_TO_USE}}}")


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


def declare_before_delayed_binding() -> None:
    """Declare each queue before a worker binds it to RabbitMQ's delayed-delivery exchange.

    Why: a worker's DelayedDelivery step (celery 5.5 to 5.7.0, quorum queues only) binds *every* queue of the
    app, while the worker has declared only those it consumes: each other one fails with NOT_FOUND and the step
    logs CRITICAL "Native delayed delivery will not be available" (it did bind the worker's own queues). Every
    queue is declared first, exactly as any worker or sender would declare it; a queue that exists with other
    arguments (a classic queue of an older deployment) still fails, loudly, per queue.
    """
    original = delayed_delivery.bind_queue_to_native_delayed_delivery_exchange
    if getattr(original, "declares_first", False):
        return

    @wraps(original)
    def bind(connection: Connection, queue: Queue, *args: Any, **kwargs: Any) -> None:
        channel = connection.channel()
        try:
            queue.bind(channel).declare()
        finally:
            channel.close()
        original(connection, queue, *args, **kwargs)

    bind.declares_first = True  # type: ignore[attr-defined]
    delayed_delivery.bind_queue_to_native_delayed_delivery_exchange = bind


class FleetTask(Task):
    """The base of the fleet's tasks: on RabbitMQ, a retry goes back to the queue its message came from.

    Why: with quorum queues Celery (5.5 to 5.7.0) sends a countdown retry through native delayed delivery and
    takes the routing key from the queue the *router* picks for the task's name, not from the message: a
    consider task (no route: the sender picks the agent's profile queue) came back on the default queue
    (``keeper``), an outcome of shard ``training.3`` on ``training``; a worker of another profile, or none,
    got it. Naming the queue the message was delivered from (its routing key, less the delay prefix a delayed
    message carries) keeps every retry on its queue. A countdown under a second would make Celery compute a
    zero delay and refuse the retry (``countdown must be a positive number``): it is rounded up. Redis brokers
    are left exactly as Celery has them.
    """

    def _on_amqp(self) -> bool:
        from agentfleet.protocol.celeryconfig import is_amqp  # here: importing it reads the settings

        return is_amqp(str(self.app.conf.broker_url or ""))

    def signature_from_request(
        self,
        request: Any = None,
        args: Any = None,
        kwargs: Any = None,
        queue: Any = None,
        **extra_options: Any,
    ) -> Any:
        if queue is None and self._on_amqp():
            queue = delivered_from(self.app, self.request if request is None else request)
        return super().signature_from_request(request, args, kwargs, queue=queue, **extra_options)

    def retry(self, *args: Any, countdown: float | None = None, **kwargs: Any) -> Any:
        if countdown is not None and countdown > 0 and self._on_amqp():
            countdown = math.ceil(countdown)
        return super().retry(*args, countdown=countdown, **kwargs)


def delivered_from(app: Celery, request: Any) -> str | None:
    """The fleet queue a task's message was delivered from (its routing key; our queues are named by theirs),
    or None when the key names no queue of ours."""
    key = (getattr(request, "delivery_info", None) or {}).get("routing_key")
    if not key:
        return None
    name = _DELAY_PREFIX.sub("", str(key), count=1)
    return name if name in app.amqp.queues else None


survive_broker_restarts()
declare_before_delayed_binding()
app = Celery("agentfleet", include=list(TASK_MODULES), task_cls=FleetTask)
app.config_from_object("agentfleet.protocol.celeryconfig")


@setup_logging.connect
def _logging(**_kwargs: Any) -> None:
    """Celery's own logging setup is replaced by the fleet's (text or JSON, AGENTFLEET_LOG_FORMAT)."""
    configure_logging(get_settings())
