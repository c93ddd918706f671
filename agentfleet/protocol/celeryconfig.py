"""Celery configuration, built from :class:`agentfleet.settings.Settings`.

Why these choices (see also ../shared/stack-facts.md):
- JSON only: messages are data, never pickles; anyone with broker access could otherwise run code.
- acks_late + reject_on_worker_lost + prefetch 1: a task whose worker dies is redelivered, and one slow
  LLM call never holds other messages hostage.
- visibility_timeout short (45 s) so a dead worker's message comes back within a minute, and kombu's unacked
  restore sweep set to follow it (its default sweep runs only every 10 x 10 s). A task that runs longer is
  delivered a second time while it runs: harmless, because the first holds a heartbeat claim (the copy backs
  off) and every effect is checked against the chain. Retry countdowns stay below it for the same reason.
- A reconciler (beat) reads chain state and re-drives stuck work: the slow path that always converges.
- Routing by task name; consider/execute go to the agent's profile queue chosen by the sender.
"""

from __future__ import annotations

from kombu import Queue

from agentfleet.protocol import routing
from agentfleet.settings import get_settings

_settings = get_settings()

broker_url = _settings.redis_url.get_secret_value()
result_backend = broker_url
broker_connection_retry_on_startup = True
broker_transport_options = {
    "visibility_timeout": _settings.visibility_timeout,  # seconds
    "unacked_restore_interval": _settings.unacked_restore_interval,  # seconds
    "unacked_restore_throttle": 1,  # sweep on every interval, not every 10th
    # The sweep holds a Redis mutex; a worker killed inside it left the mutex for kombu's default 300 s, and no
    # other worker could restore anything (a SIGKILLed trainer's message waited 5 minutes). A sweep takes ms.
    "unacked_mutex_expire": 10,  # seconds
    "polling_interval": 0.1,  # seconds: BRPOP timeout when idle
}
result_backend_transport_options = {"visibility_timeout": _settings.visibility_timeout}
result_expires = 24 * 3600  # seconds

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
task_time_limit = _settings.task_time_limit  # seconds
task_soft_time_limit = max(1, _settings.task_time_limit - 30)  # seconds
task_track_started = True
worker_send_task_events = True  # Flower
task_send_sent_event = False  # a second publish per task: halves dispatch throughput
timezone = "UTC"

task_default_queue = routing.KEEPER
task_queues = tuple(Queue(name, routing_key=name) for name in routing.ALL_QUEUES)
beat_schedule = {
    "finalize-due-auctions": {"task": routing.FINALIZE_DUE, "schedule": _settings.keeper_interval},  # seconds
    "reconcile": {"task": routing.RECONCILE, "schedule": _settings.reconcile_interval},  # seconds
}
task_routes = routing.ROUTES
