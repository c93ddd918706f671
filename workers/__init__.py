"""The agent workers: Celery tasks acting for the fleet's agents (``celery -A workers worker -Q agent.research,...``).

``tasks``: consider, execute, evaluate, deliver; ``keeper``: finalize and expire; ``reconcile``: re-drive stuck
work from chain state; ``idempotency``: the work ledger; ``review``: work waiting for a human. The app itself is
the protocol's (``agentfleet.protocol.app``); this package prepares the metrics folder first.
"""

from agentfleet.worker_metrics_dir import prepare_multiprocess_dir

prepare_multiprocess_dir()  # before anything imports prometheus_client (see agentfleet/worker_metrics.py)

from agentfleet.protocol.app import app  # noqa: E402

__all__ = ["app"]
