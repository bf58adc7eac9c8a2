"""What an SRE scrapes after a replay: valid Prometheus text with the right counts."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.builders import death_value, enrollment_value, person, settlement_value
from tests.integration.outputs import consumed_total
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), float("nan"))


def test_metrics_pass_promtool_and_count_what_was_consumed_and_emitted(kafka, make_worker):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus (scripts/setup --dev does)"
    worker = make_worker().start()
    topics = kafka.topics
    a, b = person(701), person(702)
    records = [
        ("MEDICAL_SETTLEMENTS", settlement_value("s1", a, "2017-01-01T09:00:00+08:00", "20000")),
        ("MEDICAL_SETTLEMENTS", settlement_value("s2", a, "2017-02-01T09:00:00+08:00", "12000")),
        ("MEDICAL_SETTLEMENTS", settlement_value("s2", a, "2017-02-01T09:00:00+08:00", "12000")),  # again
        (
            "MEDICAL_SETTLEMENTS",
            {
                **settlement_value("r9", a, "2017-02-02T09:00:00+08:00", "0"),
                "kind": "reversal",
                "reverses": "zz",
            },
        ),
        ("MEDICAL_SETTLEMENTS", {**settlement_value("bad", a, "2017-02-03T09:00:00", "1")}),  # no offset
        ("MEDICAL_SETTLEMENTS", b"not json"),
        ("SUBSIDY_ENROLLMENTS", enrollment_value("e1", b, "dibao", "active", "2015-01-01")),
        ("DEATH_REGISTRATIONS", death_value("d1", b, "2017-05-05")),
        (
            "DEATH_REGISTRATIONS",
            {**death_value("w1", b, "2017-05-06"), "status": "withdrawn", "withdraws": "no-such"},
        ),
    ]
    for logical, record in records:
        kafka.send(logical, record, key=a if isinstance(record, bytes) else "auto")
    kafka.wait_for("ASSISTANCE_WARNINGS", 1)
    kafka.wait_for("PAYMENT_STOPS", 1)
    kafka.wait_for("DEADLETTER", 2)
    wait_until(lambda: consumed_total(worker.metrics()) == len(records), 30, "all records consumed")

    def lag_is_zero() -> str | None:
        text = worker.metrics()
        lags = [
            v for (name, _), v in samples(text).items() if name == "benefit_integrity_consumer_lag_records"
        ]
        return text if lags and all(v == 0 for v in lags) else None

    text = wait_until(lag_is_zero, 30, "lag of every input partition to reach 0")
    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    med, deaths, enrol = (
        topics["MEDICAL_SETTLEMENTS"],
        topics["DEATH_REGISTRATIONS"],
        topics["SUBSIDY_ENROLLMENTS"],
    )
    assert value(text, "benefit_integrity_records_consumed_total", topic=med) == 6
    assert value(text, "benefit_integrity_records_consumed_total", topic=deaths) == 2
    assert value(text, "benefit_integrity_records_consumed_total", topic=enrol) == 1
    assert value(text, "benefit_integrity_dead_letters_total", topic=med, error_class="schema") == 1
    assert value(text, "benefit_integrity_dead_letters_total", topic=med, error_class="json") == 1
    assert value(text, "benefit_integrity_dead_letters_total", topic=med, error_class="key") == 0
    assert value(text, "benefit_integrity_warnings_total", rule="MEDICAL_SELF_PAY", tier="30000.00") == 1
    assert value(text, "benefit_integrity_payment_stops_total", reason="DEATH", program="dibao") == 1
    assert value(text, "benefit_integrity_unknown_reversals_total") == 1
    assert value(text, "benefit_integrity_ignored_withdrawals_total") == 1
    assert value(text, "benefit_integrity_duplicate_records_total", topic=med) == 1
    assert value(text, "benefit_integrity_processing_latency_seconds_count", topic=med) == 1
    assert value(text, "benefit_integrity_last_event_timestamp_seconds", topic=deaths) == pytest.approx(
        1494043200.0  # registered_at of the withdrawal: 2017-05-06T12:00:00+08:00
    )
    assert value(text, "benefit_integrity_ready") == 1
    assert value(text, "benefit_integrity_rebalances_total") >= 1
    assert value(text, "benefit_integrity_table_recovery_seconds") > 0
    assert value(text, "benefit_integrity_table_persons", table="person_medical") >= 1
    assert value(text, "benefit_integrity_faust_total_events_total") >= len(records)
    # No person identifier in any label.
    for (_, labels), _ in samples(text).items():
        for _, label_value in labels:
            assert a not in label_value and b not in label_value
    # Nor in the worker's log at INFO (dead letters and rebalances are logged there).
    log = worker.log_path.read_text()
    assert "dead letter" in log and a not in log and b not in log


def test_json_logs_are_one_object_per_line(kafka, make_worker):
    worker = make_worker(STREAM_APP_LOG_FORMAT="json").start()
    kafka.send("MEDICAL_SETTLEMENTS", b"{", key=person(703))
    kafka.wait_for("DEADLETTER", 1)
    wait_until(lambda: "dead letter" in worker.log_path.read_text(), 30, "the dead letter logged")
    assert worker.stop() == 0
    import json

    lines = [line for line in worker.log_path.read_text().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line parses
    assert {"ts", "level", "logger", "message"} <= entries[0].keys()
    assert any("dead letter" in e["message"] and e["level"] == "info" for e in entries)
