"""A streaming run of the real worker and `stream-app backtest` over the same records agree.

The records are sent to the real input topics, the worker's outputs are read from the
real output topics; then the input topics are read back in kcat -J form and the backtest
runs over that file. Both must give the same records (ids included, emitted_at aside).
Status records go first and are waited for, so that across topics the worker sees
them in the order the backtest takes them (ts order): the hardship flag of a medical
warning depends on that order, and the contract promises none across topics.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from stream_app.topology import INPUT_TOPICS, OUTPUT_TOPICS
from tests.builders import (
    death_value,
    disability_value,
    enrollment_value,
    person,
    settlement_value,
)
from tests.integration.conftest import expected_outputs
from tests.integration.outputs import consumed_total
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

HOLDER, DOUBLE, DIES, REVOKED, SEVERE, BIG, CROWD = (person(700 + n) for n in range(7))


def status_records() -> list[tuple[str, Any, Any]]:
    return [
        (
            "SUBSIDY_ENROLLMENTS",
            enrollment_value("e1", HOLDER, "dibao", "active", "2016-01-01", "900"),
            "auto",
        ),
        ("SUBSIDY_ENROLLMENTS", enrollment_value("e2", DOUBLE, "tekun", "active", "2016-01-01"), "auto"),
        ("SUBSIDY_ENROLLMENTS", enrollment_value("e3", DOUBLE, "dibao", "active", "2016-03-01"), "auto"),
        ("SUBSIDY_ENROLLMENTS", enrollment_value("e4", DIES, "tekun", "active", "2015-06-01"), "auto"),
        ("DEATH_REGISTRATIONS", death_value("d1", DIES, "2017-02-10"), "auto"),
        (
            "SUBSIDY_ENROLLMENTS",
            enrollment_value("e5", REVOKED, "disability_living", "active", "2016-01-01"),
            "auto",
        ),
        ("DISABILITY_REGISTRATIONS", disability_value("r1", REVOKED, "revoked", "2017-03-03"), "auto"),
        (
            "DISABILITY_REGISTRATIONS",
            disability_value("r2", SEVERE, "certified", "2017-04-04", level=1),
            "auto",
        ),
        ("SUBSIDY_ENROLLMENTS", enrollment_value("e6", CROWD, "dibao", "active", "2016-01-01"), CROWD[::-1]),
        ("DEATH_REGISTRATIONS", b"\xff\xfe not UTF-8", DIES),
    ]


def medical_records() -> list[tuple[str, Any, Any]]:
    # Households of one member each (R7 through the internal topic): a household's warnings then
    # do not depend on how members' partitions interleave, which no run can promise.
    at = "T09:00:00+08:00"
    hh1, hh2 = {"household_id": "HH-BT-1"}, {"household_id": "HH-BT-2"}
    return [
        ("MEDICAL_SETTLEMENTS", settlement_value("m1", HOLDER, "2017-01-05" + at, "20000", **hh1), "auto"),
        ("MEDICAL_SETTLEMENTS", settlement_value("m2", HOLDER, "2017-02-05" + at, "12000.50", **hh1), "auto"),
        ("MEDICAL_SETTLEMENTS", settlement_value("m3", BIG, "2017-01-10" + at, "55000", **hh2), "auto"),
        (
            "MEDICAL_SETTLEMENTS",
            settlement_value("m3", BIG, "2017-01-10" + at, "55000", **hh2),
            "auto",
        ),  # again
        (
            "MEDICAL_SETTLEMENTS",
            {
                "event_id": "m4",
                "person_id": BIG,
                "region_code": "330183004",
                "settled_at": "2017-01-11" + at,
                "kind": "reversal",
                "reverses": "m3",
            },
            "auto",
        ),
        ("MEDICAL_SETTLEMENTS", settlement_value("m5", BIG, "2017-01-12" + at, "31000", **hh2), "auto"),
        ("MEDICAL_SETTLEMENTS", settlement_value("m6", BIG, "2017-01-13T09:00:00", "1"), "auto"),  # no offset
        ("MEDICAL_SETTLEMENTS", b'{"event_id": "m7", "person_id": ', BIG),  # not JSON
    ]


def send_all(kafka, records) -> list[tuple[str, Any, tuple[bytes | None, bytes]]]:
    sent = []
    for logical, value, key in records:
        raw = value if isinstance(value, bytes) else json.dumps(value, ensure_ascii=False).encode()
        meta = kafka.send(logical, raw if isinstance(value, bytes) else value, key=key)
        if key == "auto":
            key = value["person_id"]
        sent.append((kafka.topics[logical], meta, (key.encode() if isinstance(key, str) else key, raw)))
    return sent


def read_inputs_as_kcat(address: str, topics: dict[str, str]) -> list[dict[str, Any]]:
    """Every record of the input topics, as kcat -J prints them (partition by partition)."""
    consumer = KafkaConsumer(bootstrap_servers=[address], enable_auto_commit=False)
    lines = []
    try:
        for logical in INPUT_TOPICS:
            topic = topics[logical]
            parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            consumer.assign(parts)
            consumer.seek_to_beginning(*parts)
            ends = consumer.end_offsets(parts)
            got: list[Any] = []

            def done(parts=parts, ends=ends, got=got) -> bool:
                for batch in consumer.poll(timeout_ms=200).values():
                    got.extend(batch)
                return all(consumer.position(tp) >= ends[tp] for tp in parts)

            wait_until(done, 30, f"all of {topic} read back")
            for msg in sorted(got, key=lambda m: (m.partition, m.offset)):
                try:
                    payload = msg.value.decode("utf-8") if msg.value is not None else None
                except UnicodeDecodeError:
                    continue  # kcat -J has no lossless text for a non-UTF-8 value (see the test)
                lines.append(
                    {
                        "topic": msg.topic,
                        "partition": msg.partition,
                        "offset": msg.offset,
                        "tstype": "create",
                        "ts": msg.timestamp,
                        "broker": 0,
                        "key": msg.key.decode() if msg.key is not None else None,
                        "payload": payload,
                    }
                )
    finally:
        consumer.close()
    return lines


def comparable(logical_topic: str, value: dict[str, Any], key: str | None) -> str:
    value = {k: v for k, v in value.items() if k not in ("emitted_at", "received_at", "_key")}
    return json.dumps([logical_topic, key, value], sort_keys=True, ensure_ascii=False)


def test_backtest_of_the_input_topics_equals_the_streaming_run(kafka, make_worker, scenario, tmp_path):
    worker = make_worker().start()
    first = send_all(kafka, status_records())
    # The status outputs: stops for the death and the revocation, a duplicate-assistance and a
    # nursing-eligible warning, two dead letters (the wrong key, the bad bytes).
    wait_until(lambda: consumed_total(worker.metrics()) == len(first), 60, "the status records consumed")
    second = send_all(kafka, medical_records())
    sent = first + second
    expected = expected_outputs(scenario["env"], sent)
    want = Counter(e.topic for e in expected)
    for logical in OUTPUT_TOPICS:
        kafka.wait_for(logical, want[logical])
    wait_until(lambda: consumed_total(worker.metrics()) == len(sent), 60, "every record consumed")
    streamed = Counter(
        comparable(logical, record, record["_key"])
        for logical in OUTPUT_TOPICS
        for record in kafka.read(logical)
    )
    assert sum(streamed.values()) == len(expected)
    assert {e.value.__class__.__name__ for e in expected} >= {"SelfPayWarning", "PaymentStop", "DeadLetter"}
    assert {e.key for e in expected if getattr(e.value, "rule", None) == "HOUSEHOLD_SELF_PAY"} == {
        b"HH-BT-1",
        b"HH-BT-2",
    }

    lines = read_inputs_as_kcat(scenario["address"], scenario["topics"])
    assert len(lines) == len(sent) - 1  # all but the non-UTF-8 value
    path = tmp_path / "inputs.jsonl"
    path.write_text("".join(json.dumps(obj, ensure_ascii=False) + "\n" for obj in lines), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "stream_app", "backtest", str(path)],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("STREAM_APP_")}, **scenario["env"]},
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode()
    logical_of = {name: logical for logical, name in scenario["topics"].items()}
    backtested = Counter()
    for line in result.stdout.decode().splitlines():
        obj = json.loads(line)
        backtested[comparable(logical_of[obj["topic"]], json.loads(obj["payload"]), obj["key"])] += 1
        assert obj["ts"] in {item["ts"] for item in lines}

    # Every output of the streaming run, ids and content included, except the dead letter of the
    # non-UTF-8 value, which a kcat -J file cannot carry (its payload must be a JSON string).
    [encoding_letter] = [k for k in streamed if '"error_class": "encoding"' in k]
    assert backtested == streamed - Counter({encoding_letter: 1})
    assert b"records/s" in result.stderr

    # The same in two processes (--jobs): the same lines, byte for byte, in the same order.
    in_two = subprocess.run(
        [sys.executable, "-m", "stream_app", "backtest", "--jobs", "2", str(path)],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("STREAM_APP_")}, **scenario["env"]},
        capture_output=True,
        timeout=120,
    )
    assert in_two.returncode == 0, in_two.stderr.decode()
    assert in_two.stdout == result.stdout
