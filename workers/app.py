"""The fleet's Celery application (``celery -A workers ...``)."""

from __future__ import annotations

from celery import Celery

app = Celery("agentfleet", include=["workers.tasks", "trainer.tasks"])
app.config_from_object("celeryconfig")
