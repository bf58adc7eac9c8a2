"""The worker's web port as its users see it: health, readiness, person state, routing."""

from __future__ import annotations

import signal

import pytest

from tests.builders import enrollment_value, person, settlement_value
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def test_persons_needs_the_token_validates_ids_and_answers_state(kafka, make_worker):
    worker = make_worker(STREAM_APP_API_TOKEN="s3cret").start()
    auth = {"Authorization": "Bearer s3cret"}
    who, nobody = person(501), person(502)
    assert worker.get("/healthz")[0] == 200
    assert worker.get("/readyz") == (200, {"ready": True})
    assert worker.get(f"/persons/{who}")[0] == 401
    assert worker.get(f"/persons/{who}", {"Authorization": "Bearer wrong"})[0] == 401
    assert worker.get("/persons/330183195001020019", auth)[0] == 400  # wrong check character
    assert worker.get("/persons/12345", auth)[0] == 400
    assert worker.get(f"/persons/{nobody}", auth)[0] == 404

    assert worker.get("/households/HH-W1")[0] == 401  # the same token rule
    assert worker.get("/households/HH-W1", auth)[0] == 404
    assert worker.get("/households/" + "H" * 129, auth)[0] == 400

    kafka.send(
        "MEDICAL_SETTLEMENTS",
        settlement_value("s1", who, "2017-03-01T09:00:00+08:00", "1234.5", household_id="HH-W1"),
    )
    kafka.send("SUBSIDY_ENROLLMENTS", enrollment_value("e1", who, "dibao", "active", "2017-01-01", "760"))

    def state():
        status, body = worker.get(f"/persons/{who}", auth)
        return body if status == 200 and body["medical"] and body["status"] else None

    body = wait_until(state, 30, "the person's state")
    assert body["medical"]["rolling_self_pay"] == "1234.50"
    assert body["medical"]["armed_tiers"] == ["30000.00", "50000.00"]
    assert body["status"]["programs"][0]["program"] == "dibao"
    assert body["status"]["death_in_force"] is None

    def household():
        status, body = worker.get("/households/HH-W1", auth)
        return body if status == 200 else None

    body = wait_until(household, 30, "the household's state")
    assert (body["household_id"], body["medical"]["members"]) == ("HH-W1", [who])
    assert body["medical"]["rolling_self_pay"] == "1234.50"
    assert body["medical"]["armed_tiers"] == ["30000.00", "50000.00"]
    assert worker.get("/households/HH-W1")[0] == 401


def test_readyz_says_not_ready_during_a_rebalance_and_either_worker_answers(kafka, make_worker):
    first = make_worker("a").start()
    second = make_worker("b").start(wait_ready=False)
    # The second worker's join rebalances the group: the first is not ready meanwhile.
    seen: list[int] = []

    def back_to_ready() -> bool:
        seen.append(first.get("/readyz")[0])
        return 503 in seen and seen[-1] == 200 and second.get("/readyz")[0] == 200

    wait_until(back_to_ready, 120, "a rebalance (503) and then both workers ready", interval=0.05)
    people = [person(600 + n) for n in range(12)]  # spread over all partitions
    for n, who in enumerate(people):
        kafka.send(
            "MEDICAL_SETTLEMENTS", settlement_value(f"s{n}", who, "2017-03-01T09:00:00+08:00", str(100 + n))
        )

    def both_answer() -> bool:
        if first.get("/readyz")[0] != 200 or second.get("/readyz")[0] != 200:
            return False
        answers = [(w.get(f"/persons/{who}")) for who in people for w in (first, second)]
        return all(status == 200 for status, _ in answers)

    wait_until(both_answer, 90, "both workers to answer for every person")
    for n, who in enumerate(people):
        a, b = first.get(f"/persons/{who}")[1], second.get(f"/persons/{who}")[1]
        assert a == b and a["medical"]["rolling_self_pay"] == f"{100 + n}.00"


def test_a_worker_left_without_partitions_is_still_ready(scenario, make_worker):
    # One partition, two workers: one of them gets no active partition (a standby at
    # most); it must still report ready, or a rollout with spare replicas would stall.
    first = make_worker("a", STREAM_APP_PARTITIONS="1").start()
    second = make_worker("b", STREAM_APP_PARTITIONS="1").start(wait_ready=False)
    wait_until(
        lambda: first.get("/readyz")[0] == 200 and second.get("/readyz")[0] == 200,
        120,
        "both workers ready",
    )
    logs = first.log_path.read_text() + second.log_path.read_text()
    assert "assigned 0 input partitions (none)" in logs  # one of them really has nothing


def test_a_person_held_by_a_killed_worker_is_503_until_the_group_moves_it(kafka, make_worker):
    first = make_worker("a").start()
    second = make_worker("b").start(wait_ready=False)
    people = [person(700 + n) for n in range(12)]  # spread over all partitions
    for n, who in enumerate(people):
        kafka.send(
            "MEDICAL_SETTLEMENTS", settlement_value(f"k{n}", who, "2017-03-01T09:00:00+08:00", str(100 + n))
        )

    def both_answer() -> bool:
        if first.get("/readyz")[0] != 200 or second.get("/readyz")[0] != 200:
            return False
        return all(first.get(f"/persons/{who}")[0] == 200 for who in people)

    wait_until(both_answer, 120, "both workers ready and answering for every person")
    second.stop(signal.SIGKILL)
    # Until the group notices (its session timeout) the first worker still forwards the
    # killed worker's persons there: a retryable 503 with Retry-After, never a 500.
    seen: list[int] = []

    def all_answered_again() -> bool:
        answers = [first.get(f"/persons/{who}") for who in people]
        seen.extend(status for status, _ in answers)
        assert all(status in (200, 503) for status, _ in answers), answers
        return all(status == 200 for status, _ in answers)

    wait_until(all_answered_again, 120, "the first worker to answer for every person itself")
    assert 503 in seen
