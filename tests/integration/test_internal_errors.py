"""A defect in one record: an ``internal`` dead letter, state as before it, then replayed once fixed.

The defect is injected by ``tests/integration/faulty_worker.py`` (a test-only entry point
that makes chosen records raise after their new state was staged); the fixed worker is the
real ``stream-app worker``; the replay is the real ``stream-app replay-deadletters``.
"""

from __future__ import annotations

import json
import re
import signal
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from stream_app.processing import internal_dead_letter
from stream_app.records import encode
from stream_app.settings import load
from tests.builders import death_value, enrollment_value, person, settlement_value
from tests.integration.crash import Sent, _plain, compare, expected_outputs, identity, read_outputs
from tests.integration.outputs import consumed_total
from tests.integration.test_cli import stream_app
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def metric(text: str, name: str, topic: str) -> float:
    found = re.search(rf'^benefit_integrity_{name}\{{topic="{re.escape(topic)}"\}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def stored(address: str, topic: str) -> int:
    """Records on a topic, counted to the fetch high watermark (end offsets are wrong locally)."""
    reader = KafkaConsumer(bootstrap_servers=[address], enable_auto_commit=False)
    parts = [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic) or ())]
    reader.assign(parts)
    reader.seek_to_beginning(*parts)
    count = 0

    def caught_up() -> bool:
        nonlocal count
        count += sum(len(records) for records in reader.poll(timeout_ms=200).values())
        return all(
            reader.highwater(tp) is not None and reader.position(tp) >= reader.highwater(tp) for tp in parts
        )

    try:
        wait_until(caught_up, 30, f"{topic} read to its end", interval=0)
    finally:
        reader.close()
    return count


def test_a_record_that_raises_is_an_internal_dead_letter_and_replays_exactly_once_after_the_fix(
    scenario, make_worker, kafka
):
    topics, env, address = scenario["topics"], scenario["env"], scenario["address"]
    a, b, c = person(501), person(502), person(503)
    faulty = make_worker(module="tests.integration.faulty_worker", TEST_FAULT_EVENT_IDS="a2,b-death").start()
    sent: list[Sent] = []

    def send(logical: str, value: Any, key: str = "auto") -> None:
        meta = kafka.send(logical, value, key=key)
        key_bytes = (value["person_id"] if key == "auto" else key).encode()
        sent.append(Sent(logical, meta.partition, meta.offset, key_bytes, json.dumps(value).encode()))

    def person_state(who: str) -> dict[str, Any]:
        status, body = faulty.get(f"/persons/{who}")
        assert status == 200, body
        return body

    def bills(who: str) -> tuple[str, list[str]]:
        medical = person_state(who)["medical"]
        return medical["rolling_self_pay"], [s["event_id"] for s in medical["settlements"]]

    # Before the defect: a bill of a, an enrollment of b.
    send("MEDICAL_SETTLEMENTS", settlement_value("a1", a, "2020-01-10T09:00:00+08:00", "20000"))
    send("SUBSIDY_ENROLLMENTS", enrollment_value("b-dibao", b, "dibao", "active", "2016-01-01", "900"))
    wait_until(lambda: consumed_total(faulty.metrics()) == 2, 30, "the first records processed")

    # The defect: a's second bill (it would cross 30,000) and b's death (it would stop dibao) raise.
    # A bad record beside them is a dead letter of its own class.
    send("MEDICAL_SETTLEMENTS", settlement_value("a2", a, "2020-02-10T09:00:00+08:00", "15000"))
    send("DEATH_REGISTRATIONS", death_value("b-death", b, "2020-03-05"))
    send("MEDICAL_SETTLEMENTS", settlement_value("a-bad", a, "2020-02-11T09:00:00+08:00", "-1"))
    letters = {
        d["offset"] if d["error_class"] == "schema" else d["topic"]: d
        for d in kafka.wait_for("DEADLETTER", 3)
    }
    for logical, event_id in (("MEDICAL_SETTLEMENTS", "a2"), ("DEATH_REGISTRATIONS", "b-death")):
        letter = letters[topics[logical]]
        assert letter["error_class"] == "internal"
        assert letter["error"].startswith(
            f"processing raised RuntimeError: injected fault for event {event_id}"
        )
        assert json.loads(letter["value"])["event_id"] == event_id
    metrics = faulty.metrics()
    assert metric(metrics, "internal_errors_total", topics["MEDICAL_SETTLEMENTS"]) == 1
    assert metric(metrics, "internal_errors_total", topics["DEATH_REGISTRATIONS"]) == 1
    # The persons' state is as before those records.
    assert bills(a) == ("20000.00", ["a1"])
    assert person_state(b)["status"]["death_in_force"] is None

    # Later records of a, and of another person, are processed normally.
    send("MEDICAL_SETTLEMENTS", settlement_value("a3", a, "2020-03-10T09:00:00+08:00", "5000"))
    send("MEDICAL_SETTLEMENTS", settlement_value("c1", c, "2020-03-10T09:00:00+08:00", "35000"))
    [warning] = kafka.wait_for("ASSISTANCE_WARNINGS", 1)
    assert (warning["person_id"], warning["tier"]) == (c, "30000.00")
    wait_until(lambda: consumed_total(faulty.metrics()) == 7, 30, "the later records processed")
    assert bills(a) == ("25000.00", ["a1", "a3"])
    assert kafka.read("PAYMENT_STOPS") == []

    # The fix is deployed: the same data dir, without the defect.
    assert faulty.stop() == 0
    fixed = make_worker().start()
    replay_env = {k: v for k, v in env.items() if k.startswith("STREAM_APP_")}

    # A dry run lists what would be sent, and sends nothing.
    inputs_before = stored(address, topics["MEDICAL_SETTLEMENTS"])
    dry = stream_app("replay-deadletters", "--dry-run", "--topic", "MEDICAL_SETTLEMENTS", env=replay_env)
    assert dry.returncode == 0, dry.stderr
    [listed] = [json.loads(line) for line in dry.stdout.splitlines()]
    assert (listed["topic"], listed["error_class"]) == (topics["MEDICAL_SETTLEMENTS"], "internal")
    assert f"{topics['MEDICAL_SETTLEMENTS']}: 1 would send" in dry.stderr
    assert stored(address, topics["MEDICAL_SETTLEMENTS"]) == inputs_before

    # The replay: internal dead letters only (the bad record stays a dead letter).
    result = stream_app("replay-deadletters", env=replay_env)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2
    assert f"{topics['MEDICAL_SETTLEMENTS']}: 1 sent" in result.stderr
    assert f"{topics['DEATH_REGISTRATIONS']}: 1 sent" in result.stderr

    [stop] = kafka.wait_for("PAYMENT_STOPS", 1)
    assert (stop["person_id"], stop["reason"], stop["caused_by"]) == (b, "DEATH", "b-death")
    warnings = kafka.wait_for("ASSISTANCE_WARNINGS", 2)
    assert [(w["person_id"], w["evidence"]) for w in warnings[1:]] == [(a, ["a1", "a2", "a3"])]
    wait_until(lambda: consumed_total(fixed.metrics()) >= 2, 30, "the replayed records processed")
    status, state = fixed.get(f"/persons/{a}")
    assert (status, state["medical"]["rolling_self_pay"]) == (200, "40000.00")

    # A second replay is harmless: the worker has the records already.
    again = stream_app("replay-deadletters", env=replay_env)
    assert again.returncode == 0, again.stderr
    wait_until(lambda: consumed_total(fixed.metrics()) == 4, 30, "the second replay processed")

    # Every output, by id and content, is what the pure rules give for the records in the order the
    # worker took them (the faulted ones last), each exactly once; the faulted records' dead letters too.
    faulted = {"a2", "b-death"}
    kept = [s for s in sent if json.loads(s.value)["event_id"] not in faulted]
    replayed = [s for s in sent if json.loads(s.value)["event_id"] in faulted]
    expected = expected_outputs(env, kept + replayed, topics)
    limit = load(env).max_record_bytes
    for s in replayed:
        event_id = json.loads(s.value)["event_id"]
        emit = internal_dead_letter(
            RuntimeError(f"injected fault for event {event_id}"),
            topics[s.logical],
            s.partition,
            s.offset,
            s.key,
            s.value,
            limit,
        )
        value = json.loads(encode(emit.value))
        expected[identity("DEADLETTER", value)] = ("DEADLETTER", emit.key, _plain(value))
    copies = compare(expected, read_outputs(address, topics))
    assert copies == {1: len(expected)}
    assert fixed.proc.poll() is None
    assert faulty.proc.returncode == 0 and fixed.stop(signal.SIGTERM) == 0


def test_replay_deadletters_refuses_a_time_without_offset_with_exit_2():
    result = stream_app("replay-deadletters", "--since", "2026-12-04T08:00:00", timeout=30)
    assert result.returncode == 2
    assert "--since" in result.stderr and "no offset" in result.stderr
