"""Celery configuration, built from :class:`agentfleet.settings.Settings`.

Why these choices (see also ../shared/stack-facts.md):
- JSON only: messages are data, never pickles; anyone with broker access could otherwise run code.
- acks_late + reject_on_worker_lost + prefetch 1: a task whose worker dies is redelivered, and one slow
  LLM call never holds other messages hostage.
- The broker is Redis (``AGENTFLEET_REDIS_URL``) unless ``AGENTFLEET_BROKER_URL`` names another one; results,
  nonces, claims and every other piece of shared state stay in Redis whatever the broker.
- Redis broker: visibility_timeout short (45 s) so a dead worker's message comes back within a minute, and
  kombu's unacked restore sweep set to follow it (its default sweep runs only every 10 x 10 s). A task that
  runs longer is delivered a second time while it runs: harmless, because the first holds a heartbeat claim
  (the copy backs off) and every effect is checked against the chain. Retry countdowns stay below it too.
- RabbitMQ broker (amqp://): a dead worker's messages come back as soon as its connection drops, so there is
  no visibility timeout to tune. Every queue is a quorum queue (replicated, durable, poison-message counting)
  bound to one topic exchange, and publishes wait for the broker's confirm. Quorum queues have no global QoS
  (Celery turns it off when it detects them) and no per-message TTL tricks; countdown/ETA retries use Celery's
  native delayed delivery (celery >= 5.5), which needs a topic (or fanout) exchange: on a direct exchange a
  retry's ETA would be held in the worker's memory, and with static prefetch the worker would stall.
- A reconciler (beat) reads chain state and re-drives stuck work: the slow path that always converges.
- Routing by task name; consider/execute go to the agent's profile queue chosen by the sender.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from kombu import Exchange, Queue

from agentfleet.protocol import routing
from agentfleet.settings import Settings, get_settings

AMQP_SCHEMES = frozenset({"amqp", "amqps", "pyamqp"})
TASK_EXCHANGE = "agentfleet.tasks"  # RabbitMQ: the topic exchange every task queue is bound to
QUORUM = {"x-queue-type": "quorum"}


def is_amqp(url: str) -> bool:
    """True for a RabbitMQ (AMQP 0-9-1) broker URL: amqp://, amqps:// or pyamqp://."""
    return urlsplit(url).scheme.lower() in AMQP_SCHEMES


def broker_url_of(settings: Settings) -> str:
    """``AGENTFLEET_BROKER_URL``, or ``AGENTFLEET_REDIS_URL`` when it is unset or empty (docker-compose.yml passes
    it through empty unless it is set)."""
    explicit = settings.broker_url.get_secret_value().strip() if settings.broker_url is not None else ""
    return explicit or settings.redis_url.get_secret_value()


def queue_names(settings: Settings) -> tuple[str, ...]:
    """Every queue the fleet routes to: the profiles', the service queues and the trainer shards'."""
    return tuple(dict.fromkeys((*routing.ALL_QUEUES, *routing.training_queues(settings.trainer_shards))))


def broker_settings(url: str, settings: Settings) -> dict[str, Any]:
    """The Celery settings that depend on the kind of broker ``url`` is, by name (the same names either way,
    so a test can switch an app from one broker to the other and back)."""
    names = queue_names(settings)
    if is_amqp(url):
        exchange = Exchange(TASK_EXCHANGE, type="topic")
        return {
            "broker_url": url,
            "broker_transport_options": {"confirm_publish": True},  # a publish returns once the broker has it
            "task_queues": tuple(Queue(n, exchange, routing_key=n, queue_arguments=QUORUM) for n in names),
            "task_default_exchange": TASK_EXCHANGE,
            "task_default_exchange_type": "topic",
            # A worker started on a queue not listed here (``-Q agent.new``) declares it the same way.
            "task_create_missing_queue_type": "quorum",
            "task_create_missing_queue_exchange_type": "topic",
        }
    return {
        "broker_url": url,
        "broker_transport_options": {
            "visibility_timeout": settings.visibility_timeout,  # seconds
            "unacked_restore_interval": settings.unacked_restore_interval,  # seconds
            "unacked_restore_throttle": 1,  # sweep on every interval, not every 10th
            # The sweep holds a Redis mutex; a worker killed inside it left the mutex for kombu's default 300 s,
            # and no other worker could restore anything (a SIGKILLed trainer's message waited 5 minutes).
            "unacked_mutex_expire": 10,  # seconds
            "polling_interval": 0.1,  # seconds: BRPOP timeout when idle
        },
        "task_queues": tuple(Queue(n, routing_key=n) for n in names),
        "task_default_exchange": None,  # Celery's defaults
        "task_default_exchange_type": "direct",
        "task_create_missing_queue_type": "classic",
        "task_create_missing_queue_exchange_type": None,
    }


_settings = get_settings()
_broker = broker_settings(broker_url_of(_settings), _settings)

broker_url = _broker["broker_url"]
broker_transport_options = _broker["broker_transport_options"]
broker_connection_retry_on_startup = True
result_backend = _settings.redis_url.get_secret_value()  # always Redis, whatever the broker
result_backend_transport_options = {"visibility_timeout": _settings.visibility_timeout}
result_expires = 24 * 3600  # seconds

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
worker_detect_quorum_queues = True  # RabbitMQ: no global QoS on quorum queues (Celery's default, stated)
broker_native_delayed_delivery_queue_type = "quorum"  # RabbitMQ: the delay queues of countdown retries
task_time_limit = _settings.task_time_limit  # seconds
task_soft_time_limit = max(1, _settings.task_time_limit - 30)  # seconds
task_track_started = True
worker_send_task_events = True  # Flower
task_send_sent_event = False  # a second publish per task: halves dispatch throughput
timezone = "UTC"

task_default_queue = routing.KEEPER
task_queues = _broker["task_queues"]
task_default_exchange = _broker["task_default_exchange"]
task_default_exchange_type = _broker["task_default_exchange_type"]
task_create_missing_queue_type = _broker["task_create_missing_queue_type"]
task_create_missing_queue_exchange_type = _broker["task_create_missing_queue_exchange_type"]
beat_schedule = {
    "finalize-due-auctions": {"task": routing.FINALIZE_DUE, "schedule": _settings.keeper_interval},  # seconds
    "reconcile": {"task": routing.RECONCILE, "schedule": _settings.reconcile_interval},  # seconds
}
task_routes = routing.ROUTES
