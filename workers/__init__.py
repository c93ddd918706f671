"""Celery workers acting for the fleet's agents; ``celery -A workers worker -Q agent.research,...``."""

from agentfleet.worker_metrics_dir import prepare_multiprocess_dir

prepare_multiprocess_dir()  # before anything imports prometheus_client (see workers/metrics.py)

from agentfleet.protocol.app import app  # noqa: E402

__all__ = ["app"]
