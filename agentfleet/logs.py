"""Logging for every process: text for people, JSON lines for log shippers (AGENTFLEET_LOG_FORMAT)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from agentfleet.settings import Settings

_log_file: Path | None = None  # set by the demo: its console belongs to the progress view and the table


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def log_to_file(path: Path | None) -> None:
    """Send this process's logs to ``path`` from the next ``configure_logging`` on (errors still reach
    stderr); None goes back to stderr."""
    global _log_file
    _log_file = path


def configure_logging(settings: Settings) -> None:
    handler: logging.Handler = logging.FileHandler(_log_file) if _log_file else logging.StreamHandler()
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handlers = [handler]
    if _log_file:
        errors = logging.StreamHandler()
        errors.setLevel(logging.ERROR)
        errors.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handlers.append(errors)
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(settings.log_level.upper())
