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


def test_repeated_kafka_client_errors_are_held_back_and_counted():
    import logging

    from stream_app.logs import QuietRepeats

    quiet = QuietRepeats(every_s=30)

    def line(name: str, at: float, msg: str = "Unable connect to node with id %s") -> logging.LogRecord:
        record = logging.LogRecord(name, logging.ERROR, __file__, 1, msg, (111,), None)
        record.created = at
        return record

    passed = [quiet.filter(r) for r in (line("aiokafka", t) for t in (0.0, 1.0, 2.0, 29.0))]
    assert passed == [True, False, False, False]
    later = line("aiokafka", 31.0)
    assert quiet.filter(later) and "(and 3 more like it in the last 30s)" in later.getMessage()
    assert quiet.filter(line("stream_app.agents", 31.5, "dead letter %s"))  # our own lines pass
