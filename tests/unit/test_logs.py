"""Log lines never carry an identity number at INFO or above."""

from __future__ import annotations

import json
import logging

from stream_app.logs import JsonFormatter, RedactPersonIds
from tests.builders import person


def record(level: int, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("faust.producer", level, __file__, 1, msg, args, None)


def test_identity_numbers_are_masked_at_info_and_above():
    who = person(9)
    rec = record(
        logging.WARNING, "send failed for key=%r value=%s", who.encode(), f'{{"person_id": "{who}"}}'
    )
    assert RedactPersonIds().filter(rec)
    assert who not in rec.getMessage() and rec.getMessage().count("<person_id>") == 2


def test_other_numbers_and_debug_lines_are_left_alone():
    rec = record(logging.INFO, "offset 1234567890123456789 of partition 3, region 330183004")
    RedactPersonIds().filter(rec)
    assert rec.getMessage() == "offset 1234567890123456789 of partition 3, region 330183004"
    who = person(10)
    debug = record(logging.DEBUG, "emitted for %s", who)
    RedactPersonIds().filter(debug)
    assert who in debug.getMessage()


def test_json_formatter_writes_one_object():
    line = JsonFormatter().format(record(logging.INFO, "dead letter %s[%d]@%d: %s", "t", 1, 2, "json"))
    entry = json.loads(line)
    assert entry["message"] == "dead letter t[1]@2: json" and entry["level"] == "info"
