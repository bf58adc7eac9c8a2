"""Logging: text or JSON lines, with identity numbers masked in every line.

Our own log calls never name a person at INFO or above; the filter is the safety
net for the libraries' lines (a failed send, say, may print the record).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from stream_app.settings import Settings

#: An 18-character resident identity number anywhere in a line.
_PERSON_ID = re.compile(r"(?<![0-9])[0-9]{17}[0-9X](?![0-9A-Za-z])")
TEXT_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"


class RedactPersonIds(logging.Filter):
    """Mask identity numbers in INFO-and-above lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.INFO:
            message = record.getMessage()
            if _PERSON_ID.search(message):
                record.msg, record.args = _PERSON_ID.sub("<person_id>", message), None
        return True


class QuietRepeats(logging.Filter):
    """While the broker is away, the Kafka clients log the same error many times a second
    (over a thousand lines in 30 s). Pass the first line of each kind, then at most one per
    ``every_s`` seconds, saying how many were held back; other lines are untouched."""

    def __init__(self, every_s: float = 30.0) -> None:
        super().__init__()
        self.every_s = every_s
        self._last: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(("aiokafka", "kafka")) or record.levelno < logging.WARNING:
            return True
        key = (record.name, str(record.msg))
        last, held = self._last.get(key, (float("-inf"), 0))
        if record.created - last < self.every_s:
            self._last[key] = (last, held + 1)
            return False
        self._last[key] = (record.created, 0)
        if held:
            record.msg = f"{record.getMessage()} (and {held} more like it in the last {self.every_s:.0f}s)"
            record.args = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def worker_logging_config(settings: Settings) -> dict[str, Any]:
    """dictConfig for the Faust worker (and the lines before it starts)."""
    level = settings.log_level.upper()
    formatter = {"()": JsonFormatter} if settings.log_format == "json" else {"format": TEXT_FORMAT}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": RedactPersonIds}, "repeats": {"()": QuietRepeats}},
        "formatters": {"default": formatter},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["repeats", "redact"],
                "level": level,
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"level": level, "handlers": ["default"]},
        # The admin client is chatty at INFO.
        "loggers": {"kafka": {"level": "WARNING"}},
    }
