"""Celery workers acting for the fleet's agents; ``celery -A workers worker -Q agent.research,...``."""

from workers.app import app

__all__ = ["app"]
