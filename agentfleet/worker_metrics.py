"""Prometheus metrics of the Celery workers and the trainer, on ``AGENTFLEET_WORKER_METRICS_PORT``.

Why prometheus_client's multiprocess mode: with the prefork pool, tasks run in pool children that cannot
each serve the port. Every process writes its values to files in one folder (``PROMETHEUS_MULTIPROC_DIR``)
and the worker's main process serves their sum. ``agentfleet.worker_metrics_dir`` makes a fresh folder (removed on
shutdown) in ``workers/__init__.py``, before the metrics below are created. With the port unset nothing
changes: metrics are plain in-process values nobody serves. Cost: ``bench/metrics.py`` (about 0.2 ms a task).

The trainer is a Celery worker of the same app: it serves the same families (its ``record_outcome``
results, model versions, losses) on the port its own environment sets. Importing this module connects the
signal handlers: the task modules (workers, trainer) import it; the listener and the CLI never do.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from typing import Any

from celery.signals import (
    task_postrun,
    task_prerun,
    task_success,
    worker_init,
    worker_process_shutdown,
    worker_shutdown,
)
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess, start_http_server

from agentfleet.settings import get_settings
from agentfleet.worker_metrics_dir import OWNED_DIR_ENV

log = logging.getLogger(__name__)

TASKS = Counter("agentfleet_worker_tasks", "Finished Celery tasks by name and outcome", ["task", "outcome"])
RESULTS = Counter(
    "agentfleet_worker_results", "Task results by the status they report (bid, refused, trained...)", ["task", "status"]
)
SECONDS = Histogram(
    "agentfleet_worker_task_seconds", "Task run time", ["task"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
)
STUCK = Counter("agentfleet_stuck_work", "Work that needs a decision: execute_given_up, needs_review", ["kind"])
LLM_TOKENS = Counter("agentfleet_llm_tokens", "LLM tokens used, by kind", ["kind"])
LLM_COST = Counter("agentfleet_llm_cost_usd", "Estimated LLM cost (USD)")
MODEL_VERSION = Gauge(
    "agentfleet_trainer_model_version", "Version of the agent's RL model on disk", ["agent"], multiprocess_mode="max"
)
TRAIN_LOSS = Gauge(
    "agentfleet_trainer_loss", "Last training loss of the agent's model", ["agent"], multiprocess_mode="mostrecent"
)
REPLAY_SIZE = Gauge(
    "agentfleet_trainer_replay_size", "Transitions in the agent's replay memory", ["agent"], multiprocess_mode="max"
)
_started: dict[str, float] = {}


@worker_init.connect
def _serve(**_kwargs: Any) -> None:
    settings = get_settings()
    if settings.worker_metrics_port is None:
        return
    registry = REGISTRY  # without the folder: this process's own values (a solo or threads worker)
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    try:
        start_http_server(settings.worker_metrics_port, addr=settings.metrics_address, registry=registry)
    except OSError as exc:  # the worker's tasks matter more than its metrics: say so loudly and go on
        log.error(
            "worker metrics endpoint not started on %s:%s: %s",
            settings.metrics_address,
            settings.worker_metrics_port,
            exc,
        )
        return
    log.info("worker metrics on %s:%s/metrics", settings.metrics_address, settings.worker_metrics_port)


@worker_process_shutdown.connect
def _child_gone(pid: int | None = None, **_kwargs: Any) -> None:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        multiprocess.mark_process_dead(pid or os.getpid())


@worker_shutdown.connect
def _cleanup(**_kwargs: Any) -> None:
    if os.environ.get(OWNED_DIR_ENV) and "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


@task_prerun.connect
def _begin(task_id: str | None = None, **_kwargs: Any) -> None:
    if task_id:
        _started[task_id] = time.monotonic()


@task_postrun.connect
def _end(sender: Any = None, task_id: str | None = None, state: str | None = None, **_kwargs: Any) -> None:
    name = getattr(sender, "name", "?")
    began = _started.pop(task_id or "", None)
    if began is not None:
        SECONDS.labels(task=name).observe(time.monotonic() - began)
    TASKS.labels(task=name, outcome=(state or "unknown").lower()).inc()


@task_success.connect
def _result(sender: Any = None, result: Any = None, **_kwargs: Any) -> None:
    """One count per result; a batch (``decisions``: one result per agent) counts each agent's result."""
    if not isinstance(result, dict):
        return
    decisions = result.get("decisions")
    results = list(decisions.values()) if isinstance(decisions, dict) else [result]
    for each in results:
        if isinstance(each, dict) and isinstance(each.get("status"), str):
            RESULTS.labels(task=getattr(sender, "name", "?"), status=each["status"][:40]).inc()


def record_llm_usage(prompt_tokens: int, completion_tokens: int, cost_usd: float) -> None:
    LLM_TOKENS.labels(kind="prompt").inc(prompt_tokens)
    LLM_TOKENS.labels(kind="completion").inc(completion_tokens)
    LLM_COST.inc(max(0.0, cost_usd))


def record_training(agent: str, *, version: int, loss: float | None, replay_size: int) -> None:
    agent = agent.lower()
    MODEL_VERSION.labels(agent=agent).set(version)
    REPLAY_SIZE.labels(agent=agent).set(replay_size)
    if loss is not None:
        TRAIN_LOSS.labels(agent=agent).set(loss)


def record_stuck(kind: str) -> None:
    """Work the fleet stopped retrying: a given-up execution (it expires) or a score for a human to decide."""
    STUCK.labels(kind=kind).inc()
