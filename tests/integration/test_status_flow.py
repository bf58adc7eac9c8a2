"""Status feeds over the real topics: stops, resumes and eligibility warnings (R2, R3, R5)."""

from __future__ import annotations

import pytest

from tests.builders import death_value, disability_value, enrollment_value, person
from tests.integration.outputs import assert_valid, consumed_total
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def test_status_feeds_give_exactly_the_contract_stops_resumes_and_warnings(kafka, make_worker):
    worker = make_worker().start()
    dead, revoked, severe, wrong, late = (person(n) for n in (201, 202, 203, 204, 205))
    sent = 0

    def send(logical, value):
        nonlocal sent
        kafka.send(logical, value)
        sent += 1

    send("SUBSIDY_ENROLLMENTS", enrollment_value("e-dead", dead, "tekun", "active", "2015-05-01"))
    send("DEATH_REGISTRATIONS", death_value("d-dead", dead, "2017-09-10"))
    send(
        "SUBSIDY_ENROLLMENTS", enrollment_value("e-liv", revoked, "disability_living", "active", "2016-01-01")
    )
    send(
        "SUBSIDY_ENROLLMENTS",
        enrollment_value("e-nur", revoked, "disability_nursing", "active", "2016-01-01"),
    )
    send("DISABILITY_REGISTRATIONS", disability_value("c-rev", revoked, "revoked", "2017-10-20"))
    send("DISABILITY_REGISTRATIONS", disability_value("c-sev", severe, "certified", "2017-07-05", level=1))
    send("DEATH_REGISTRATIONS", death_value("d-late", late, "2017-03-01"))
    send("SUBSIDY_ENROLLMENTS", enrollment_value("e-late", late, "dibao", "active", "2017-05-01"))
    send("SUBSIDY_ENROLLMENTS", enrollment_value("e-wrong", wrong, "dibao", "active", "2014-03-01"))
    send("DEATH_REGISTRATIONS", death_value("d-wrong", wrong, "2017-10-30"))

    stops = kafka.wait_for("PAYMENT_STOPS", 5)
    by = {(s["person_id"], s["program"]): s for s in stops}
    assert {k: (s["reason"], s["effective_on"], s["caused_by"]) for k, s in by.items()} == {
        (dead, "tekun"): ("DEATH", "2017-10-01", "d-dead"),
        (revoked, "disability_living"): ("DISABILITY_REVOKED", "2017-11-01", "c-rev"),
        (revoked, "disability_nursing"): ("DISABILITY_REVOKED", "2017-11-01", "c-rev"),
        (late, "dibao"): ("DECEASED_ENROLLMENT", "2017-04-01", "e-late"),
        (wrong, "dibao"): ("DEATH", "2017-11-01", "d-wrong"),
    }
    assert all(s["_key"] == s["person_id"] and s["region_code"] == "330183004" for s in stops)

    # The wrong death is withdrawn: the dibao payment resumes from the stop's date.
    withdrawal = {
        **death_value("w-wrong", wrong, "2017-10-30"),
        "status": "withdrawn",
        "withdraws": "d-wrong",
    }
    send("DEATH_REGISTRATIONS", withdrawal)
    [resume] = kafka.wait_for("PAYMENT_RESUMES", 1)
    assert (resume["stop_id"], resume["reason"], resume["effective_on"], resume["caused_by"]) == (
        by[(wrong, "dibao")]["stop_id"],
        "DEATH_WITHDRAWN",
        "2017-11-01",
        "w-wrong",
    )

    [warning] = kafka.wait_for("ASSISTANCE_WARNINGS", 1)
    assert (warning["rule"], warning["person_id"], warning["level"], warning["caused_by"]) == (
        "DISABILITY_NURSING_ELIGIBLE",
        severe,
        1,
        "c-sev",
    )

    # Every record consumed, and nothing more than the above was emitted.
    wait_until(lambda: consumed_total(worker.metrics()) == sent, 30, "all records consumed")
    assert len(kafka.read("PAYMENT_STOPS")) == 5
    assert len(kafka.read("PAYMENT_RESUMES")) == 1
    assert len(kafka.read("ASSISTANCE_WARNINGS")) == 1
    assert kafka.read("DEADLETTER") == []
    assert_valid("PAYMENT_STOPS", stops)
    assert_valid("PAYMENT_RESUMES", [resume])
    assert_valid("ASSISTANCE_WARNINGS", [warning])

    status, body = worker.get(f"/persons/{revoked}")
    assert status == 200
    assert body["status"]["certification"]["status"] == "revoked"
    assert sorted(p["program"] for p in body["status"]["programs"]) == [
        "disability_living",
        "disability_nursing",
    ]
    assert worker.proc.poll() is None
