"""The chain listener: follows the contracts and turns confirmed events into Celery work."""
