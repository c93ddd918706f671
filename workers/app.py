"""The fleet's Celery application (``celery -A workers ...``)."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import setup_logging

from agentfleet.logs import configure_logging
from agentfleet.settings import get_settings

app = Celery("agentfleet", include=["workers.tasks", "trainer.tasks"])
app.config_from_object("celeryconfig")

import workers.metrics  # noqa: E402,F401  - signal handlers: metrics endpoint and task counters


@setup_logging.connect
def _logging(**_kwargs: Any) -> None:
    """Celery's own logging setup is replaced by the fleet's (text or JSON, AGENTFLEET_LOG_FORMAT)."""
    configure_logging(get_settings())
