"""Where the worker's metric files go; kept apart from ``agentfleet.worker_metrics`` because it must run before our
metrics are created: prometheus_client picks its value class (in-process or multiprocess files) when it is
imported, and `celery` itself may have imported it already (Flower's CLI plugin does), so the class is
picked again here from the environment we just set."""

from __future__ import annotations

import os
import sys
import tempfile

from agentfleet.settings import get_settings

OWNED_DIR_ENV = "AGENTFLEET_OWNS_PROMETHEUS_DIR"  # set when we made the folder (and so remove it on shutdown)


def prepare_multiprocess_dir() -> None:
    """Give this worker (and its pool children) a fresh folder for metric files, if the port is set."""
    if get_settings().worker_metrics_port is None or "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        return
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="agentfleet-metrics-")
    os.environ[OWNED_DIR_ENV] = "1"
    if "prometheus_client" in sys.modules:  # metrics created from now on write to the folder
        from prometheus_client import values

        values.ValueClass = values.get_value_class()
