"""The batched hand-off: the same outputs, byte for byte, as one record at a time, and state
that goes to the partition it belongs to.

Two real workers read the same input topics (own app ids, own output topics): one with
``STREAM_APP_MAX_BATCH_RECORDS=1`` (the per-record path), one with batches. Each finds
its input as a backlog, so its batches are large and span partitions.
"""

from __future__ import annotations

import json
import re
import signal
from collections import Counter
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from tests.builders import person, settlement_value
from tests.integration.crash import OUTPUTS, Sent, compare, expected_outputs, generate, read_outputs
from tests.integration.outputs import consumed_total
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

_WALL_CLOCK = re.compile(rb'"(emitted_at|received_at)":"[^"]*"')


def batches(metrics_text: str) -> tuple[float, float]:
    """(batches, records in them) from the worker's ``batch_records`` histogram."""
    found = dict(re.findall(r"^benefit_integrity_batch_records_(count|sum) (\S+)$", metrics_text, re.M))
    return float(found.get("count", 0)), float(found.get("sum", 0))


def produce(kafka: Any, records: list[tuple[str, bytes | None, bytes]], sent: list[Sent]) -> None:
    futures = [(r, kafka.producer.send(kafka.topics[r[0]], key=r[1], value=r[2])) for r in records]
    kafka.producer.flush()
    for (logical, key, value), future in futures:
        meta = future.get(timeout=30)
        sent.append(Sent(logical, meta.partition, meta.offset, key, value))


def wait_consumed(worker: Any, count: int) -> None:
    def done() -> bool:
        status, body = worker.get("/metrics")
        if worker.proc.poll() is not None:
            raise AssertionError(f"worker exited:\n{worker.log_tail()}")
        if status != 200:
            return False
        # R7: done once every forward to the household topic was consumed too (its outputs sent).
        forwards = re.search(r"^benefit_integrity_household_forwards_total (\S+)$", body, re.M)
        forwarded = float(forwards.group(1)) if forwards else 0.0
        return consumed_total(body) >= count and consumed_total(body, household=True) >= forwarded

    wait_until(done, 180, f"{count} records consumed, and their household forwards")


def raw_outputs(address: str, topics: dict[str, str]) -> Counter:
    """(logical topic, key, value bytes with the wall-clock field blanked) of every output record."""
    reader = KafkaConsumer(bootstrap_servers=[address], enable_auto_commit=False)
    by_name = {topics[logical]: logical for logical in OUTPUTS}
    parts = [
        TopicPartition(topics[lg], p) for lg in OUTPUTS for p in reader.partitions_for_topic(topics[lg]) or ()
    ]
    reader.assign(parts)
    reader.seek_to_beginning(*parts)
    got: Counter = Counter()

    def caught_up() -> bool:
        for records in reader.poll(timeout_ms=200, max_records=5000).values():
            for msg in records:
                got[(by_name[msg.topic], msg.key, _WALL_CLOCK.sub(rb'"\1":""', msg.value))] += 1
        return all(
            reader.highwater(tp) is not None and reader.position(tp) >= reader.highwater(tp) for tp in parts
        )

    try:
        wait_until(caught_up, 60, "every output record read", interval=0)
    finally:
        reader.close()
    return got


def test_batched_outputs_are_byte_identical_to_one_record_at_a_time(scenario, make_worker, kafka):
    feed = generate(11, people=30)  # reversals, redeliveries, late bills, bad records, multi-output records
    own = {
        "per_record": {lg: f"{name}.per-record" for lg, name in scenario["topics"].items() if lg in OUTPUTS},
        "batched": {lg: f"{name}.batched" for lg, name in scenario["topics"].items() if lg in OUTPUTS},
    }

    def worker(kind: str, batch: str) -> Any:
        env = {f"STREAM_APP_TOPIC_{lg}": name for lg, name in own[kind].items()}
        tag = scenario["tag"]
        return make_worker(
            f"state-{kind}", STREAM_APP_APP_ID=f"bi-{tag}-{kind}", STREAM_APP_MAX_BATCH_RECORDS=batch, **env
        )

    sent: list[Sent] = []
    # Phase 1 (enrollments) is processed before phase 2 exists: the feed's outputs then do not
    # depend on the order across topics. Each worker finds each phase as a backlog.
    produce(kafka, feed.phase1, sent)
    per_record, batched = worker("per_record", "1").start(), worker("batched", "500").start()
    for w in (per_record, batched):
        wait_consumed(w, len(feed.phase1))
        assert w.stop(signal.SIGTERM) == 0, w.log_tail()
    produce(kafka, feed.phase2, sent)
    for w in (per_record, batched):
        w.start()
        wait_consumed(w, len(sent) - len(feed.phase1))  # counters restart with the process
    count, records = batches(batched.metrics())
    assert records / count > 5, f"the batched worker's batches held {records / count:.1f} records on average"
    one_count, one_records = batches(per_record.metrics())  # one scrape: the worker may still be busy
    assert one_count == one_records  # all of one record

    topics = {kind: {**scenario["topics"], **own[kind]} for kind in own}
    one_by_one, in_batches = (raw_outputs(scenario["address"], topics[kind]) for kind in own)
    assert in_batches == one_by_one
    # And both are what the pure rules give (ids and content), each output once.
    expected = expected_outputs(scenario["env"], sent, scenario["topics"])
    assert compare(expected, read_outputs(scenario["address"], topics["batched"])) == Counter(
        {1: len(expected)}
    )


def test_a_batch_over_several_partitions_writes_each_persons_state_to_its_own_changelog_partition(
    scenario, make_worker, kafka
):
    """Faust takes a table write's partition from the current event; a batch's state is written
    after the batch, so each key must go out as from the record that wrote it. Checked on the
    changelog itself, and by a rebuild from it into an empty data dir."""
    crowd = [person(4000 + n) for n in range(240)]
    sent: list[Sent] = []
    records = []
    for n, who in enumerate(crowd):
        for month in (1, 2, 3):
            value = settlement_value(f"cp-{n}-{month}", who, f"2020-0{month}-10T09:00:00+08:00", "1000.50")
            records.append(("MEDICAL_SETTLEMENTS", who.encode(), json.dumps(value).encode()))
    produce(kafka, records, sent)  # a backlog before the worker starts: batches over all 4 partitions
    worker = make_worker("state-a").start()
    wait_consumed(worker, len(records))
    count, done = batches(worker.metrics())
    assert done / count > 5, f"batches held {done / count:.1f} records on average"
    assert worker.stop(signal.SIGTERM) == 0, worker.log_tail()

    partition_of = {s.key: s.partition for s in sent}
    assert len(set(partition_of.values())) == 4
    changelog = f"{scenario['env']['STREAM_APP_APP_ID']}-person_medical-changelog"
    reader = KafkaConsumer(bootstrap_servers=[scenario["address"]], enable_auto_commit=False)
    parts = [TopicPartition(changelog, p) for p in sorted(reader.partitions_for_topic(changelog) or ())]
    reader.assign(parts)
    reader.seek_to_beginning(*parts)
    landed: dict[bytes, set[int]] = {}

    def caught_up() -> bool:
        for records_ in reader.poll(timeout_ms=200).values():
            for msg in records_:
                landed.setdefault(msg.key, set()).add(msg.partition)
        return all(
            reader.highwater(tp) is not None and reader.position(tp) >= reader.highwater(tp) for tp in parts
        )

    try:
        wait_until(caught_up, 60, "the changelog read to its end", interval=0)
    finally:
        reader.close()
    misplaced = {k: p for k, p in landed.items() if p != {partition_of[k]}}
    assert set(landed) == set(partition_of) and not misplaced, f"{len(misplaced)} keys misplaced"

    rebuilt = make_worker("state-empty").start()  # recovers every partition from the changelog
    for who in crowd:
        status, body = rebuilt.get(f"/persons/{who}")
        assert status == 200, (who, status, body)
        assert body["medical"]["rolling_self_pay"] == "3001.50", (who, body["medical"])
