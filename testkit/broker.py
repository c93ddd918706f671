"""The Celery broker in tests: point the fleet's shared app at another broker and back, read a queue's depth on
either broker."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from celery import Celery
from kombu.exceptions import ChannelError

from agentfleet.protocol.celeryconfig import broker_settings
from agentfleet.settings import Settings, get_settings


@contextmanager
def use_broker(app: Celery, url: str, settings: Settings | None = None) -> Iterator[Celery]:
    """``app`` on the broker at ``url`` with that broker's own settings (``celeryconfig.broker_settings``: quorum
    queues, confirms and a topic exchange on RabbitMQ; the Redis transport options on Redis) until the block
    ends, then back on the broker and settings it had.

    Why not ``app.conf.broker_url = url``: the app caches its queue declarations, router, producer pool and
    connection pool from the broker it first used; a test that changed only the URL would publish to the old
    broker, or declare classic queues on RabbitMQ. The tasks are registered on the fleet's one app, so an
    in-thread worker has to run that app, not a fresh one."""
    new = broker_settings(url, settings or get_settings())
    old = {name: app.conf[name] for name in new}
    _apply(app, new)
    try:
        yield app
    finally:
        _apply(app, old)


def _apply(app: Celery, values: dict[str, Any]) -> None:
    app.conf.update(values)
    # Dropped, not closed: the pools live in kombu's registry, one per broker URL, and the next switch to that
    # URL gets the same pool back (a closed one would answer "Acquire on closed pool").
    app._pool = None
    app.__dict__.pop("amqp", None)  # queues, router and producer pool: rebuilt from the new settings


def queue_depth(app: Celery, queue: str) -> int:
    """Messages waiting in ``queue`` on the app's broker, whichever it is: a passive declare (on Redis the
    length of the queue's lists, what ``LLEN queue`` reads; on RabbitMQ the ready messages, not those a
    consumer holds unacknowledged). 0 for a queue that was never declared."""
    with app.connection_for_read() as connection:
        channel = connection.channel()
        try:
            return int(channel.queue_declare(queue=queue, passive=True).message_count)
        except (ChannelError, *connection.channel_errors):
            return 0  # RabbitMQ answers NOT_FOUND (and closes the channel); Redis has no such key
        finally:
            with suppress(Exception):  # a channel the broker already closed
                channel.close()
