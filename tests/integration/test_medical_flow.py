"""R1 over the real topics: warnings once each, stable ids, and both kinds of restart."""

from __future__ import annotations

import signal

import pytest

from tests.builders import person, settlement_value
from tests.integration.outputs import assert_valid, consumed_total
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

X = person(301)
CROWD = [person(1000 + n) for n in range(300)]


def test_medical_warnings_once_each_with_household_and_evidence(kafka, make_worker):
    worker = make_worker().start()
    lin = person(302)
    bills = [("b1", "2017-01-20", "8000"), ("b2", "2017-02-14", "12000.00"), ("b3", "2017-03-20", 15000)]
    bills += [("b4", "2017-04-18", "10000"), ("b5", "2017-05-22", "13000"), ("b6", "2017-06-26", "12000")]
    for eid, day, amount in bills:
        kafka.send(
            "MEDICAL_SETTLEMENTS",
            settlement_value(eid, lin, f"{day}T09:00:00+08:00", amount, household_id="HH-1"),
        )
    kafka.send(
        "MEDICAL_SETTLEMENTS", settlement_value("b5", lin, "2017-05-22T09:00:00+08:00", "13000")
    )  # again
    # A household of one (R7) crosses the same tiers: two household warnings as well.
    received = kafka.wait_for("ASSISTANCE_WARNINGS", 4)
    warnings = [w for w in received if w["rule"] == "MEDICAL_SELF_PAY"]
    household = [w for w in received if w["rule"] == "HOUSEHOLD_SELF_PAY"]
    assert [(w["_key"], w["tier"], w["members"]) for w in household] == [
        ("HH-1", "30000.00", [lin]),
        ("HH-1", "50000.00", [lin]),
    ]
    assert [(w["tier"], w["rolling_self_pay"], w["caused_by"]) for w in warnings] == [
        ("30000.00", "35000.00", "b3"),
        ("50000.00", "58000.00", "b5"),
    ]
    second = warnings[1]
    assert second["evidence"] == ["b1", "b2", "b3", "b4", "b5"]
    assert (second["window_start"], second["window_end"]) == ("2016-05-22", "2017-05-22")
    assert (second["household_id"], second["region_code"], second["_key"]) == ("HH-1", "330183004", lin)
    assert second["suggested_amount"] == "24000.00" and second["hardship_holder"] is False
    wait_until(lambda: consumed_total(worker.metrics()) == len(bills) + 1, 30, "all records consumed")
    assert len(kafka.read("ASSISTANCE_WARNINGS")) == 4
    assert_valid("ASSISTANCE_WARNINGS", received)

    status, body = worker.get(f"/persons/{lin}")
    assert status == 200
    assert (body["medical"]["rolling_self_pay"], body["medical"]["armed_tiers"]) == ("70000.00", [])
    assert body["medical"]["window_end"] == "2017-06-26"


def test_medical_sum_survives_restart_with_same_and_with_empty_data_dir(kafka, make_worker):
    first = make_worker("state-a").start()
    for n, who in enumerate(CROWD):
        kafka.producer.send(
            kafka.topics["MEDICAL_SETTLEMENTS"],
            key=who.encode(),
            value=__import__("json")
            .dumps(settlement_value(f"c{n}", who, "2017-01-01T09:00:00+08:00", "10000"))
            .encode(),
        )
    kafka.producer.flush()
    kafka.send("MEDICAL_SETTLEMENTS", settlement_value("x1", X, "2017-01-01T09:00:00+08:00", "20000"))
    kafka.send("MEDICAL_SETTLEMENTS", settlement_value("x2", X, "2017-02-01T09:00:00+08:00", "15000"))
    [w1] = kafka.wait_for("ASSISTANCE_WARNINGS", 1)
    assert (w1["tier"], w1["rolling_self_pay"]) == ("30000.00", "35000.00")
    wait_until(lambda: consumed_total(first.metrics()) == len(CROWD) + 2, 60, "all records consumed")
    assert first.stop(signal.SIGTERM) == 0

    # Same data dir: local RocksDB state plus the changelog tail.
    again = make_worker("state-a").start()
    kafka.send("MEDICAL_SETTLEMENTS", settlement_value("x3", X, "2017-03-01T09:00:00+08:00", "10000"))
    kafka.send("MEDICAL_SETTLEMENTS", settlement_value("x4", X, "2017-04-01T09:00:00+08:00", "6000"))
    w2 = kafka.wait_for("ASSISTANCE_WARNINGS", 2)[1]
    assert (w2["tier"], w2["rolling_self_pay"], w2["evidence"]) == (
        "50000.00",
        "51000.00",
        ["x1", "x2", "x3", "x4"],
    )
    wait_until(lambda: consumed_total(again.metrics()) == 2, 30, "both records consumed")
    assert again.stop(signal.SIGTERM) == 0

    # Empty data dir: every table is rebuilt from its changelog, every person comes back.
    rebuilt = make_worker("state-b").start()
    for n, who in enumerate(CROWD):
        status, body = rebuilt.get(f"/persons/{who}")
        assert status == 200 and body["medical"]["rolling_self_pay"] == "10000.00", (n, status, body)
    status, body = rebuilt.get(f"/persons/{X}")
    assert (body["medical"]["rolling_self_pay"], body["medical"]["armed_tiers"]) == ("51000.00", [])

    # And it goes on from there: a reversal re-arms 50000, the next bill fires it again.
    kafka.send(
        "MEDICAL_SETTLEMENTS",
        {
            **settlement_value("x2-r", X, "2017-04-02T09:00:00+08:00", "0"),
            "kind": "reversal",
            "reverses": "x2",
        },
    )
    kafka.send("MEDICAL_SETTLEMENTS", settlement_value("x5", X, "2017-05-01T09:00:00+08:00", "14000"))
    w3 = kafka.wait_for("ASSISTANCE_WARNINGS", 3)[2]
    assert (w3["tier"], w3["rolling_self_pay"], w3["caused_by"]) == ("50000.00", "50000.00", "x5")
    assert len({w["warning_id"] for w in kafka.read("ASSISTANCE_WARNINGS")}) == 3
