"""R4 (bills after death) and R9 (overpayment on death stops) on the real topics and worker.

The worker's medical and status agents are separate streams, so a bill and a death
may be processed in either order; here each order is made certain by waiting for the
first record to show in the person's state (GET /persons) before sending the second.
"""

from __future__ import annotations

import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.builders import death_value, enrollment_value, person, settlement_value
from tests.integration.conftest import expected_outputs
from tests.integration.outputs import assert_valid, consumed_total
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return s.value
    return float("nan")


def test_late_deaths_and_bills_after_death_give_the_contract_stops_and_warnings(kafka, make_worker, scenario):
    worker = make_worker().start()
    example, late_roll, bill_first, death_first = (person(n) for n in (801, 802, 803, 804))
    sent = []

    def send(logical, value):
        raw = json.dumps(value, ensure_ascii=False).encode()
        meta = kafka.send(logical, value)
        sent.append((kafka.topics[logical], meta, (value["person_id"].encode(), raw)))

    def state_of(who):
        status, body = worker.get(f"/persons/{who}")
        return body if status == 200 else None

    # The contract's example: died 2020-01-10, registered 2020-12-03, dibao 900.00 since 2018.
    send("SUBSIDY_ENROLLMENTS", enrollment_value("e-ex", example, "dibao", "active", "2018-01-01", "900.00"))
    wait_until(lambda: state_of(example), 30, "the enrollment in the worker's state")
    send(
        "DEATH_REGISTRATIONS",
        death_value("d-ex", example, "2020-01-10", registered_at="2020-12-03T10:00:00+08:00"),
    )

    # A roll that arrives after the death: enrolled after the death, before its registration.
    send(
        "DEATH_REGISTRATIONS",
        death_value("d-late", late_roll, "2020-01-10", registered_at="2020-06-15T09:00:00+08:00"),
    )
    wait_until(lambda: (state_of(late_roll) or {}).get("status"), 30, "the death in the worker's state")
    send("SUBSIDY_ENROLLMENTS", enrollment_value("e-late", late_roll, "dibao", "active", "2020-03-01", "800"))

    # Bills first, then the death (registered 2020-03-02, in UTC): the death's arrival checks the window.
    send("SUBSIDY_ENROLLMENTS", enrollment_value("e-bf", bill_first, "tekun", "active", "2015-05-01", "1200"))
    at = "2020-02-21T09:30:00+08:00"
    send("MEDICAL_SETTLEMENTS", settlement_value("b-bf", bill_first, at, "812.40", service_on="2020-02-20"))
    send(
        "MEDICAL_SETTLEMENTS",
        settlement_value("b-grace", bill_first, "2020-01-11T10:00:00+08:00", "50.00"),  # within the grace
    )
    wait_until(
        lambda: len(((state_of(bill_first) or {}).get("medical") or {}).get("settlements", [])) == 2,
        30,
        "both bills in the window",
    )
    send(
        "DEATH_REGISTRATIONS",
        death_value("d-bf", bill_first, "2020-01-10", registered_at="2020-03-01T16:30:00Z"),
    )

    # The death first, then a bill, its redelivery and its reversal.
    send(
        "DEATH_REGISTRATIONS",
        death_value("d-df", death_first, "2020-05-05", registered_at="2020-05-06T09:00:00+08:00"),
    )
    wait_until(lambda: (state_of(death_first) or {}).get("status"), 30, "the death in the worker's state")
    bill = settlement_value(
        "b-df",
        death_first,
        "2020-06-02T15:00:00+08:00",
        "120.00",
        service_on="2020-06-01",
        household_id="HH-9",
    )
    send("MEDICAL_SETTLEMENTS", bill)
    send("MEDICAL_SETTLEMENTS", bill)

    stops = kafka.wait_for("PAYMENT_STOPS", 3)
    figures = {
        (s["person_id"], s["program"]): (
            s["reason"],
            s["effective_on"],
            s["caused_by"],
            s["overpaid_months"],
            s["overpaid_amount"],
        )
        for s in stops
    }
    assert figures == {
        (example, "dibao"): ("DEATH", "2020-02-01", "d-ex", 11, "9900.00"),
        (late_roll, "dibao"): ("DECEASED_ENROLLMENT", "2020-02-01", "e-late", 4, "3200.00"),
        # registered 2020-03-02 in +08:00: February and March were paid
        (bill_first, "tekun"): ("DEATH", "2020-02-01", "d-bf", 2, "2400.00"),
    }

    warnings = kafka.wait_for("ASSISTANCE_WARNINGS", 2)
    by_person = {w["person_id"]: w for w in warnings}
    assert {
        who: (
            w["rule"],
            w["caused_by"],
            w["evidence"],
            w["died_on"],
            w["service_on"],
            w["self_pay"],
            w["occurred_at"],
            w.get("household_id"),
        )
        for who, w in by_person.items()
    } == {
        bill_first: (
            "POST_DEATH_ACTIVITY",
            "b-bf",
            ["b-bf", "d-bf"],
            "2020-01-10",
            "2020-02-20",
            "812.40",
            "2020-02-21T09:30:00+08:00",
            None,
        ),
        death_first: (
            "POST_DEATH_ACTIVITY",
            "b-df",
            ["b-df", "d-df"],
            "2020-05-05",
            "2020-06-01",
            "120.00",
            "2020-06-02T15:00:00+08:00",
            "HH-9",
        ),
    }
    assert all(w["_key"] == w["person_id"] for w in warnings)

    # A reversal after the warning does not unsend it; a redelivered death changes nothing.
    send(
        "MEDICAL_SETTLEMENTS",
        {
            "event_id": "r-df",
            "person_id": death_first,
            "region_code": "330183004",
            "settled_at": "2020-06-05T09:00:00+08:00",
            "kind": "reversal",
            "reverses": "b-df",
        },
    )
    send(
        "DEATH_REGISTRATIONS",
        death_value("d-bf", bill_first, "2020-01-10", registered_at="2020-03-01T16:30:00Z"),
    )
    wait_until(lambda: consumed_total(worker.metrics()) == len(sent), 30, "all records consumed")

    # Exactly these outputs, once each, with the ids the pure rules give.
    assert len(kafka.read("PAYMENT_STOPS")) == 3
    assert len(kafka.read("ASSISTANCE_WARNINGS")) == 2
    assert kafka.read("PAYMENT_RESUMES") == [] and kafka.read("DEADLETTER") == []
    expected = expected_outputs(scenario["env"], sent)
    expected_ids = sorted(getattr(e.value, "warning_id", None) or e.value.stop_id for e in expected)
    assert sorted(r.get("warning_id") or r["stop_id"] for r in stops + warnings) == expected_ids
    assert_valid("PAYMENT_STOPS", stops)
    assert_valid("ASSISTANCE_WARNINGS", warnings)

    text = worker.metrics()
    assert metric(text, "benefit_integrity_overpaid_yuan_total", program="dibao") == 13100.0
    assert metric(text, "benefit_integrity_overpaid_yuan_total", program="tekun") == 2400.0
    assert metric(text, "benefit_integrity_warnings_total", rule="POST_DEATH_ACTIVITY", tier="none") == 2
    # The person's state shows the registration date R9 counted to (2020-03-01T16:30Z is March 2 in +08:00).
    death = state_of(bill_first)["status"]["death_in_force"]
    assert death == {"event_id": "d-bf", "died_on": "2020-01-10", "registered_on": "2020-03-02"}
    assert worker.proc.poll() is None
