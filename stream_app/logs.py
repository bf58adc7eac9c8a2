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
        "filters": {"redact": {"()": RedactPersonIds}},
        "formatters": {"default": formatter},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["redact"],
                "level": level,
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"level": level, "handlers": ["default"]},
        # The admin client is chatty at INFO.
        "loggers": {"kafka": {"level": "WARNING"}},
    }
