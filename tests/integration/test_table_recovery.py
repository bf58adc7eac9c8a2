"""Tables rebuilt from changelogs written in multi-record batches come back whole.

The local broker answers ListOffsets short of the end after a multi-record batch
(``../shared/BROKER.md``). Faust's recovery, reading to that answer, refused to start on a
kept data dir (``ConsistencyError``) and, on an empty one, lost the records of the last
batch past the answer. The worker no longer puts every changelog record in its own batch
(that crutch cost ~20x in producer throughput), so its recovery has to get this right.
"""

from __future__ import annotations

import datetime
import json
import shutil
import signal
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from stream_app.processing import DictState, Processor
from stream_app.rules.medical import MedicalState
from stream_app.rules.status import StatusState
from stream_app.settings import load
from stream_app.views import medical_view, status_view
from tests.builders import enrollment_value, person, settlement_value
from tests.integration.conftest import Worker
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

PERSONS = 400
ROUNDS = 40  # bursts at most (both changelogs ended in a multi-record batch after 1 in 5)
TABLES = ("person_medical", "person_status")
PROGRAMS = ("dibao", "elderly_care", "disability_living", "disability_nursing")

Sent = list[tuple[str, Any, tuple[bytes, bytes]]]  # topic, record metadata, (key, value)


def feed(round_: int) -> list[tuple[str, dict[str, Any]]]:
    """One burst: a bill for every other person, an enrollment for the rest (one topic a person).

    As many of each, so both changelogs are written up to the end of the burst.
    """
    day = datetime.date(2017, 1, 1) + datetime.timedelta(days=round_)
    records = []
    for n in range(PERSONS):
        who = person(5000 + n)
        if n % 2:
            at = f"{day.isoformat()}T09:{n % 60:02d}:00+08:00"
            value = settlement_value(f"s{round_}-{n}", who, at, str(100 + n % 900))
            records.append(("MEDICAL_SETTLEMENTS", value))
        else:
            program = PROGRAMS[(n // 2 + round_) % len(PROGRAMS)]
            value = enrollment_value(f"e{round_}-{n}", who, program, "active", day.isoformat())
            records.append(("SUBSIDY_ENROLLMENTS", value))
    return records


def produce(address: str, topics: dict[str, str], records: list[tuple[str, dict[str, Any]]]) -> Sent:
    """Send a burst as one batch per topic, so the worker fetches each topic's part at once.

    Measured over 30 bursts: both changelogs ended in a multi-record batch after 6 of them,
    against 2 when the burst trickled in. Returns the records' metadata, in order.
    """
    producer = KafkaProducer(bootstrap_servers=[address], acks="all", linger_ms=60_000, batch_size=1 << 20)
    try:
        futures = []
        for logical, value in records:
            topic, key, raw = topics[logical], value["person_id"].encode(), json.dumps(value).encode()
            futures.append((topic, producer.send(topic, key=key, value=raw), (key, raw)))
        producer.flush()  # sends now: the linger only kept the batches open while the burst was added
        return [(topic, future.get(timeout=30), record) for topic, future, record in futures]
    finally:
        producer.close()


class Changelogs:
    """The worker's changelogs as ListOffsets and as fetch responses see them."""

    def __init__(self, address: str, app_id: str) -> None:
        self.app_id = app_id
        self.reader = KafkaConsumer(bootstrap_servers=[address], enable_auto_commit=False)
        self.group = KafkaConsumer(bootstrap_servers=[address], group_id=app_id, enable_auto_commit=False)
        topics = [f"{app_id}-{table}-changelog" for table in TABLES]
        self.parts = [
            TopicPartition(t, p) for t in topics for p in sorted(self.reader.partitions_for_topic(t) or ())
        ]
        self.reader.assign(self.parts)
        self.reader.seek_to_beginning(*self.parts)

    def ends_once_committed(self, sent: Sent) -> dict[TopicPartition, tuple[int, int]]:
        """(ListOffsets, fetch high watermark) per changelog partition, once all ``sent`` is committed.

        The worker flushes its changelog writes before it commits (stream_app/faust_patches.py),
        so by then the changelogs hold every write of these records.
        """
        ends: dict[TopicPartition, int] = {}
        for topic, meta, _ in sent:
            tp = TopicPartition(topic, meta.partition)
            ends[tp] = max(ends.get(tp, 0), meta.offset + 1)
        wait_until(
            lambda: all((self.group.committed(tp) or 0) >= end for tp, end in ends.items()),
            120,
            "the worker to commit every record sent",
        )
        reader = self.reader

        def read_to_highwater() -> bool:
            reader.poll(timeout_ms=200, max_records=5000)
            marks = [(reader.highwater(tp), reader.position(tp)) for tp in self.parts]
            return all(highwater is not None and position >= highwater for highwater, position in marks)

        wait_until(read_to_highwater, 60, "the changelogs read to their fetch high watermark")
        listed = reader.end_offsets(self.parts)
        return {tp: (listed[tp], reader.highwater(tp)) for tp in self.parts}

    def close(self) -> None:
        self.reader.close()
        self.group.close()


def expected_persons(env: dict[str, str], sent: Sent) -> dict[str, Any]:
    """``/persons/{id}`` for every person, by the pure rules over the records sent."""
    settings = load(env)
    medical: DictState[MedicalState] = DictState()
    status: DictState[StatusState] = DictState()
    processor = Processor(settings, medical, status)
    for topic, meta, (key, raw) in sent:
        processor.process(topic, meta.partition, meta.offset, key, raw)
    persons = {}
    for who in sorted({key.decode() for _, _, (key, _) in sent}):
        m, s = medical.get(who), status.get(who)
        body = {
            "person_id": who,
            "medical": m and medical_view(m, settings.rules.medical_tiers_fen),
            "status": s and status_view(s),
        }
        persons[who] = json.loads(json.dumps(body))
    return persons


def assert_every_person(worker: Worker, expected: dict[str, Any], when: str) -> None:
    wrong = {}
    for who, body in expected.items():
        status, got = worker.get(f"/persons/{who}")
        if (status, got) != (200, body):
            wrong[who] = (status, got)
    example = next(iter(wrong.items()), None)
    assert not wrong, f"{when}: {len(wrong)} of {len(expected)} persons wrong, e.g. {example}"


def test_tables_recovered_to_the_end_of_multi_record_changelog_batches(make_worker, scenario):
    # One partition per topic. Recovery ends when the last changelog partition reaches its
    # highwater; Faust as released then dropped that partition's records past ListOffsets'
    # answer (fetched, but buffered after the end). With both changelogs ending in a
    # multi-record batch, whichever comes last loses records.
    partitions = {"STREAM_APP_PARTITIONS": "1"}
    worker = make_worker("state", **partitions).start()
    sent: Sent = []
    changelogs = Changelogs(scenario["address"], scenario["env"]["STREAM_APP_APP_ID"])
    try:
        # A burst makes the worker write faster than its producer sends, now and then, so
        # some batches hold several records; where a partition's last batch does, ListOffsets
        # answers short of the fetch high watermark. Bursts go on until both changelogs end so.
        for round_ in range(ROUNDS):
            sent += produce(scenario["address"], scenario["topics"], feed(round_))
            ends = changelogs.ends_once_committed(sent)
            if all(listed < fetched for listed, fetched in ends.values()):
                break
    finally:
        changelogs.close()
    assert all(listed < fetched for listed, fetched in ends.values()), (
        f"a changelog never ended in a multi-record batch in {ROUNDS} bursts (ListOffsets, fetched): {ends}"
    )
    assert worker.stop(signal.SIGTERM) == 0
    expected = expected_persons(scenario["env"], sent)
    assert len(expected) == PERSONS

    # The same data dir: RocksDB holds offsets past ListOffsets' answer.
    kept = make_worker("state", **partitions).start()
    assert_every_person(kept, expected, "restarted on its data dir")
    assert kept.stop(signal.SIGTERM) == 0

    # No data dir: every key comes back from the changelogs, to the last record of each batch.
    shutil.rmtree(scenario["tmp"] / "state")
    rebuilt = make_worker("state", **partitions).start()
    assert_every_person(rebuilt, expected, f"rebuilt from changelogs ending {ends} (ListOffsets, fetched)")
