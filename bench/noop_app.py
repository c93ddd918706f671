"""A bare Celery app with one task that counts in Redis: the baseline of ``bench.metrics``.

``celery -A bench.noop_app worker`` runs it as plain Celery; with ``BENCH_WITH_FLEET_METRICS=1`` the module
first imports ``agentfleet.worker_metrics``, which connects the fleet's metric signal handlers (they fire for every
task in the process) and, with ``AGENTFLEET_WORKER_METRICS_PORT`` set, serves them.
"""

from __future__ import annotations

import os

import redis
from celery import Celery

if os.environ.get("BENCH_WITH_FLEET_METRICS") == "1":
    from agentfleet.worker_metrics_dir import prepare_multiprocess_dir

    prepare_multiprocess_dir()  # before the metrics are created
    import agentfleet.worker_metrics  # noqa: F401  - connects the handlers

URL = os.environ["BENCH_REDIS_URL"]
app = Celery("bench_noop", broker=URL)
app.conf.update(task_ignore_result=True, worker_prefetch_multiplier=4, worker_hijack_root_logger=False)
_client = redis.Redis.from_url(URL)


@app.task(name="bench.count")
def count() -> dict[str, str]:
    _client.incr("bench:count")
    return {"status": "counted"}
