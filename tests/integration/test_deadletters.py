"""Bad input over the real topics: dead letters with a reason, and nothing else lost."""

from __future__ import annotations

import base64
import json

import pytest

from tests.builders import death_value, disability_value, enrollment_value, person, settlement_value
from tests.integration.outputs import assert_valid, consumed_total
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def test_every_kind_of_bad_input_goes_to_dead_letters_and_good_records_still_count(kafka, make_worker):
    worker = make_worker(STREAM_APP_MAX_RECORD_BYTES="2000").start()
    who, other = person(401), person(402)

    def good(eid, amount):
        return settlement_value(eid, who, "2017-03-01T09:00:00+08:00", amount, total_cost="90000")

    wrong_check = who[:17] + ("0" if who[17] != "0" else "1")
    bad = [
        # (topic, value, key, error_class, field named in the error)
        ("MEDICAL_SETTLEMENTS", b"\xff\xfe{not utf-8", who, "encoding", None),
        ("MEDICAL_SETTLEMENTS", b'{"event_id": "x", ', who, "json", None),
        ("MEDICAL_SETTLEMENTS", b"[1, 2, 3]", who, "json", None),
        ("MEDICAL_SETTLEMENTS", b"[" * 900 + b"]" * 900, who, "json", None),  # deeper than the parser goes
        (
            "MEDICAL_SETTLEMENTS",
            {**good("m1", "1"), "person_id": wrong_check},
            wrong_check,
            "schema",
            "person_id",
        ),
        ("MEDICAL_SETTLEMENTS", good("m2", "-5"), who, "schema", "self_pay"),
        ("MEDICAL_SETTLEMENTS", good("m3", "1.005"), who, "schema", "self_pay"),
        (
            "MEDICAL_SETTLEMENTS",
            {**good("m4", "1"), "settled_at": "2017-03-01T09:00:00"},
            who,
            "schema",
            "settled_at",
        ),
        ("MEDICAL_SETTLEMENTS", {**good("m5", "1"), "kind": "refund"}, who, "schema", "kind"),
        ("MEDICAL_SETTLEMENTS", {**good("m6", "1"), "kind": "reversal"}, who, "schema", "reverses"),
        (
            "MEDICAL_SETTLEMENTS",
            {k: v for k, v in good("m7", "1").items() if k != "region_code"},
            who,
            "schema",
            "region_code",
        ),
        ("MEDICAL_SETTLEMENTS", good("m8", "1"), None, "key", None),
        ("MEDICAL_SETTLEMENTS", good("m9", "1"), other, "key", None),
        ("MEDICAL_SETTLEMENTS", {**good("m10", "1"), "note": "x" * 3000}, who, "too_large", None),
        (
            "DEATH_REGISTRATIONS",
            death_value("d1", who, "2017-02-30", registered_at="2017-03-01T12:00:00+08:00"),
            who,
            "schema",
            "died_on",
        ),
        (
            "DEATH_REGISTRATIONS",
            {**death_value("d2", who, "2017-02-01"), "status": "withdrawn"},
            who,
            "schema",
            "withdraws",
        ),
        (
            "DISABILITY_REGISTRATIONS",
            disability_value("c1", who, "certified", "2017-01-01"),
            who,
            "schema",
            "level",
        ),
        (
            "DISABILITY_REGISTRATIONS",
            disability_value("c2", who, "certified", "2017-01-01", 5),
            who,
            "schema",
            "level",
        ),
        (
            "SUBSIDY_ENROLLMENTS",
            enrollment_value("e1", who, "dibao", "paused", "2017-01-01"),
            who,
            "schema",
            "status",
        ),
        (
            "SUBSIDY_ENROLLMENTS",
            enrollment_value("e2", who, "Dibao!", "active", "2017-01-01"),
            who,
            "schema",
            "program",
        ),
    ]
    # Good records of the same person before, between and after the bad ones.
    kafka.send("MEDICAL_SETTLEMENTS", good("g1", "20000"))
    positions = []
    for topic, value, key, _, _ in bad:
        meta = kafka.send(topic, value, key=key)
        positions.append((kafka.topics[topic], meta.partition, meta.offset))
    # A tombstone (no value at all) is bad input too.
    tomb = kafka.producer.send(kafka.topics["MEDICAL_SETTLEMENTS"], key=who.encode(), value=None).get(
        timeout=30
    )
    positions.append((kafka.topics["MEDICAL_SETTLEMENTS"], tomb.partition, tomb.offset))
    bad.append(("MEDICAL_SETTLEMENTS", None, who, "json", None))
    kafka.send("MEDICAL_SETTLEMENTS", good("g2", "15000"))

    letters = kafka.wait_for("DEADLETTER", len(bad))
    by_position = {(d["topic"], d["partition"], d["offset"]): d for d in letters}
    assert set(by_position) == set(positions)
    for (_, value, key, error_class, field), position in zip(bad, positions, strict=True):
        letter = by_position[position]
        assert letter["error_class"] == error_class, letter
        if field:
            assert f"`{field}`" in letter["error"], letter
        assert letter["key"] == key
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        if value is None:
            assert letter["value"] is None
        elif letter.get("value_encoding") == "base64":
            assert base64.b64decode(letter["value"]) == raw
        elif letter.get("value_truncated"):
            assert raw.decode().startswith(letter["value"]) and len(letter["value"]) == 2000
        else:
            assert letter["value"] == raw.decode()
    assert_valid("DEADLETTER", letters)

    # The good records around them were handled as if the bad ones had not been there.
    [warning] = kafka.wait_for("ASSISTANCE_WARNINGS", 1)
    assert (warning["rolling_self_pay"], warning["evidence"]) == ("35000.00", ["g1", "g2"])
    wait_until(lambda: consumed_total(worker.metrics()) == len(bad) + 2, 30, "all records consumed")
    assert len(kafka.read("DEADLETTER")) == len(bad)
    assert worker.proc.poll() is None
    status, _ = worker.get("/healthz")
    assert status == 200
