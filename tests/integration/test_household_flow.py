"""R7 over the real topics: members on different partitions cross the household tiers together,
through the internal household topic, across a restart and a rebuild from the changelog."""

from __future__ import annotations

import functools
import signal
from typing import Any

import pytest
from kafka.partitioner.default import murmur2

from tests.builders import person, settlement_value
from tests.integration.outputs import assert_valid, consumed_total
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

PARTITIONS = 4  # the scenario's STREAM_APP_PARTITIONS
WIFE, CHILD, SHAO = person(71), person(72), person(78)
HH = "HH-SHAO"
MEMBERS = sorted((WIFE, CHILD, SHAO))


def partition_of(key: str) -> int:
    """The partition the producers' default partitioner (murmur2) puts a key in."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % PARTITIONS


def bill(eid: str, who: str, day: str, amount: str) -> dict[str, Any]:
    return settlement_value(eid, who, f"{day}T10:00:00+08:00", amount, household_id=HH)


# No member reaches a person tier (30000) alone: the wife 28000, the child 14000, Shao 29000.
BEFORE_RESTART = [
    bill("w1", WIFE, "2019-01-10", "16000"),
    bill("w2", WIFE, "2019-02-10", "12000"),
    bill("c1", CHILD, "2019-03-10", "14000"),  # household 42000: tier 30000
]
AFTER_RESTART = [bill("s1", SHAO, "2019-04-10", "29000")]  # household 71000: tier 50000


def household_warnings(kafka: Any, count: int) -> list[dict[str, Any]]:
    got = kafka.wait_for("ASSISTANCE_WARNINGS", count)
    assert all(w["rule"] == "HOUSEHOLD_SELF_PAY" for w in got), got  # no member warned alone
    return got


def all_consumed(worker: Any, inputs: int, forwards: int) -> None:
    """Until this worker consumed at least so many inputs and re-keyed records (more after a
    kill: records it had not committed come again)."""

    def done() -> bool:
        text = worker.metrics()
        return consumed_total(text) >= inputs and consumed_total(text, household=True) >= forwards

    wait_until(done, 60, f"{inputs} inputs and {forwards} forwards consumed")


def send_one_by_one(kafka: Any, worker: Any, values: list[dict[str, Any]], forwarded: int = 0) -> None:
    """Send each bill once the one before has reached the household side. Members' bills travel
    on different partitions, so without this the household could see them in any order: the
    same (household, tier) warnings, but other sums in them (R7 promises no more)."""
    for n, value in enumerate(values, forwarded + 1):
        kafka.send("MEDICAL_SETTLEMENTS", value)
        reached = functools.partial(_forwards_consumed, worker, n)
        wait_until(reached, 60, f"forward {n} consumed")


def _forwards_consumed(worker: Any, count: int) -> bool:
    return consumed_total(worker.metrics(), household=True) >= count


def check_crossings(warnings: list[dict[str, Any]]) -> None:
    assert [
        (w["_key"], w["tier"], w["rolling_self_pay"], w["suggested_amount"], w["caused_by"], w["person_id"])
        for w in warnings
    ] == [
        (HH, "30000.00", "42000.00", "16000.00", "c1", CHILD),
        (HH, "50000.00", "71000.00", "30000.00", "s1", SHAO),  # R8: min(30000, 0.5 x 61000)
    ]
    assert warnings[0]["members"] == sorted((WIFE, CHILD))
    assert warnings[1]["members"] == MEMBERS
    assert warnings[1]["evidence"] == ["w1", "w2", "c1", "s1"]
    assert all(w["household_id"] == HH and w["hardship_holder"] is False for w in warnings)
    assert len({w["warning_id"] for w in warnings}) == 2
    assert_valid("ASSISTANCE_WARNINGS", warnings)


def test_members_on_three_partitions_cross_together_across_a_worker_restart(kafka, make_worker):
    assert len({partition_of(WIFE), partition_of(CHILD), partition_of(SHAO)}) == 3
    worker = make_worker("state-a").start()
    send_one_by_one(kafka, worker, BEFORE_RESTART)
    household_warnings(kafka, 1)
    all_consumed(worker, len(BEFORE_RESTART), len(BEFORE_RESTART))
    assert worker.stop(signal.SIGKILL) != 0  # a kill between two members' settlements

    again = make_worker("state-a").start()
    for value in AFTER_RESTART + BEFORE_RESTART[:1]:  # and a redelivered bill, counted once
        kafka.send("MEDICAL_SETTLEMENTS", value)
    all_consumed(again, 2, 1)  # the redelivery is a person-side duplicate: not forwarded
    check_crossings(household_warnings(kafka, 2))
    assert len(kafka.read("ASSISTANCE_WARNINGS")) == 2

    status, body = again.get(f"/households/{HH}")
    assert status == 200, body
    medical = body["medical"]
    assert (medical["rolling_self_pay"], medical["armed_tiers"], medical["members"]) == (
        "71000.00",
        [],
        MEMBERS,
    )
    assert (medical["window_start"], medical["window_end"]) == ("2018-04-10", "2019-04-10")
    assert again.get("/households/HH-NOBODY")[0] == 404
    status, body = again.get(f"/persons/{WIFE}")
    assert (status, body["medical"]["rolling_self_pay"]) == (200, "28000.00")


def test_the_household_table_is_rebuilt_from_its_changelog_into_an_empty_data_dir(kafka, make_worker):
    first = make_worker("state-a").start()
    send_one_by_one(kafka, first, BEFORE_RESTART)
    household_warnings(kafka, 1)
    all_consumed(first, len(BEFORE_RESTART), len(BEFORE_RESTART))
    assert first.stop(signal.SIGTERM) == 0

    rebuilt = make_worker("state-b").start()  # empty data dir: tables from their changelogs
    status, body = rebuilt.get(f"/households/{HH}")
    assert status == 200, body
    assert (body["medical"]["rolling_self_pay"], body["medical"]["armed_tiers"]) == ("42000.00", ["50000.00"])
    for value in AFTER_RESTART:
        kafka.send("MEDICAL_SETTLEMENTS", value)
    check_crossings(household_warnings(kafka, 2))
    all_consumed(rebuilt, len(AFTER_RESTART), len(AFTER_RESTART))
    assert len(kafka.read("ASSISTANCE_WARNINGS")) == 2

    # A bad value on the internal topic (a foreign producer, a defect) is a dead letter like
    # any input's, and the household goes on as if it had not been there.
    kafka.send("HOUSEHOLD_SETTLEMENTS", b'{"household_id": ', key=HH)
    [letter] = kafka.wait_for("DEADLETTER", 1)
    assert (letter["topic"], letter["error_class"]) == (kafka.topics["HOUSEHOLD_SETTLEMENTS"], "json")
    status, body = rebuilt.get(f"/households/{HH}")
    assert (status, body["medical"]["rolling_self_pay"]) == (200, "71000.00")
