"""``stream-app replay-deadletters``: send chosen dead letters back to their input topics.

Meant for class ``internal`` (a valid record whose processing raised: a defect) once
the defect is fixed: the person's state was left as before the record, so sending it
again gives the outputs it should have given, with the same ids. The other classes are
bad input: replayed unchanged, they would only be dead-lettered again, so they are
replayed only when asked for by name.

The dead letters are read from the beginning of the topic to its high watermark as the
fetch responses give it (the local broker's ListOffsets end offsets are wrong after
multi-record batches: ``../shared/BROKER.md``). A dead letter written twice (at least
once delivery) is one record, by its (topic, partition, offset). Key and value are
restored byte for byte (base64 when the dead letter says so); a value cut to the size
limit cannot be, and is refused.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from stream_app.records import ERROR_CLASSES as ERROR_CLASSES  # re-exported
from stream_app.security import kafka_python_config
from stream_app.settings import Settings

DEFAULT_CLASSES = frozenset({"internal"})


class ReplayError(Exception):
    """The replay cannot be done as asked (exit 1); the message says why."""


class NotReplayable(ValueError):
    """A dead letter whose record cannot be restored exactly."""


def parse_time(text: str) -> datetime:
    """An RFC 3339 date-time with an offset (``Z`` or ``+08:00``)."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an RFC 3339 date-time: {text!r}") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no offset: write e.g. {text}+08:00 or {text}Z")
    return parsed


@dataclass(frozen=True)
class Selection:
    """Which dead letters to replay. ``topics`` None: every topic; times bound ``received_at``."""

    topics: frozenset[str] | None = None
    classes: frozenset[str] = DEFAULT_CLASSES
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive

    def matches(self, letter: dict[str, Any]) -> bool:
        if self.topics is not None and letter.get("topic") not in self.topics:
            return False
        if letter.get("error_class") not in self.classes:
            return False
        if self.since is None and self.until is None:
            return True
        try:
            received = parse_time(str(letter.get("received_at", "")))
        except ValueError:
            return False  # no usable time: never inside a time filter
        if self.since is not None and received < self.since:
            return False
        return self.until is None or received < self.until


def resolve_topics(names: Iterable[str], settings: Settings) -> frozenset[str] | None:
    """Logical names (``MEDICAL_SETTLEMENTS``) become topic names; other names are taken as given."""
    resolved = frozenset(settings.topics.get(name, name) for name in names)
    return resolved or None


@dataclass(frozen=True)
class Replay:
    """One record to send again, and the dead letter it comes from."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int  # of the original record, on ``topic``
    offset: int
    letter: dict[str, Any]


def _restore_bytes(letter: dict[str, Any], field: str) -> bytes | None:
    text = letter.get(field)
    if text is None:
        return None
    if not isinstance(text, str):
        raise NotReplayable(f"`{field}` is not text")
    if letter.get(f"{field}_encoding") == "base64":
        try:
            return base64.b64decode(text, validate=True)
        except binascii.Error:
            raise NotReplayable(f"`{field}` is not valid base64") from None
    return text.encode("utf-8")


def restore(letter: dict[str, Any]) -> Replay:
    """The original record of a dead letter, key and value byte for byte."""
    if letter.get("value_truncated"):
        raise NotReplayable(
            "its value was cut to the size limit (too_large), so the original cannot be restored "
            "from the dead letter; read it at its topic/partition/offset if it is still retained"
        )
    topic, partition, offset = letter.get("topic"), letter.get("partition"), letter.get("offset")
    if not (isinstance(topic, str) and topic and isinstance(partition, int) and isinstance(offset, int)):
        raise NotReplayable("it has no valid `topic`, `partition` and `offset`")
    return Replay(
        topic, _restore_bytes(letter, "key"), _restore_bytes(letter, "value"), partition, offset, letter
    )


def describe(letter: dict[str, Any]) -> str:
    return f"{letter.get('topic')}[{letter.get('partition')}]@{letter.get('offset')}"


def plan(letters: Iterable[dict[str, Any]], selection: Selection) -> tuple[list[Replay], list[str]]:
    """The records to send, in their original order per topic partition, and why any cannot be."""
    chosen: dict[tuple[Any, Any, Any], dict[str, Any]] = {}
    for letter in letters:
        if selection.matches(letter):
            chosen.setdefault((letter.get("topic"), letter.get("partition"), letter.get("offset")), letter)
    replays, refused = [], []
    for letter in chosen.values():
        try:
            replays.append(restore(letter))
        except NotReplayable as exc:
            refused.append(f"dead letter of {describe(letter)} ({letter.get('error_class')}): {exc}")
    replays.sort(key=lambda r: (r.topic, r.partition, r.offset))
    return replays, refused


def read_deadletters(settings: Settings, timeout: float, err: TextIO) -> list[dict[str, Any]]:
    """Every dead letter, from the beginning of the topic to its fetch high watermark."""
    name = settings.topic("DEADLETTER")
    print(f"reading {name} from {settings.broker}", file=err)
    try:
        consumer = KafkaConsumer(enable_auto_commit=False, **kafka_python_config(settings))
    except KafkaError as exc:
        raise ReplayError(f"cannot reach the brokers at {settings.broker}: {exc}") from None
    letters: list[dict[str, Any]] = []
    unreadable = 0
    try:
        partitions = consumer.partitions_for_topic(name)
        if not partitions:
            raise ReplayError(f"topic {name} does not exist on {settings.broker}")
        parts = [TopicPartition(name, p) for p in sorted(partitions)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        deadline = time.monotonic() + timeout
        while True:
            for records in consumer.poll(timeout_ms=200, max_records=5000).values():
                for msg in records:
                    try:
                        letter = json.loads(msg.value)
                    except (TypeError, ValueError):
                        letter = None
                    if isinstance(letter, dict):
                        letters.append(letter)
                    else:
                        unreadable += 1
            if all(
                consumer.highwater(tp) is not None and consumer.position(tp) >= consumer.highwater(tp)
                for tp in parts
            ):
                break
            if time.monotonic() > deadline:
                raise ReplayError(f"could not read {name} to its end within {timeout:.0f}s")
    finally:
        consumer.close()
    note = f" ({unreadable} not JSON objects, skipped)" if unreadable else ""
    print(f"read {len(letters)} dead letters from {name} ({len(parts)} partitions){note}", file=err)
    return letters


def send(settings: Settings, replays: list[Replay]) -> None:
    """Send the records and wait until the brokers acknowledged each (in order per partition)."""
    producer = KafkaProducer(
        linger_ms=0, acks="all", max_in_flight_requests_per_connection=1, **kafka_python_config(settings)
    )
    try:
        futures = [(r, producer.send(r.topic, key=r.key, value=r.value)) for r in replays]
        producer.flush()
        failed = []
        for replay, future in futures:
            try:
                future.get(timeout=30)
            except KafkaError as exc:
                failed.append(f"{describe(replay.letter)}: {exc}")
        if failed:
            raise ReplayError(
                f"{len(failed)} of {len(replays)} records not acknowledged (sending again is safe): "
                + "; ".join(failed[:5])
            )
    finally:
        producer.close()


def summary_line(replay: Replay) -> dict[str, Any]:
    letter = replay.letter
    return {
        "topic": replay.topic,
        "partition": replay.partition,
        "offset": replay.offset,
        "key": letter.get("key"),
        "error_class": letter.get("error_class"),
        "received_at": letter.get("received_at"),
        "error": letter.get("error"),
    }


def run(
    settings: Settings, selection: Selection, dry_run: bool, out: TextIO, err: TextIO, timeout: float = 60
) -> int:
    """List (``dry_run``) or send the chosen dead letters; counts per topic on ``err``. Exit code."""
    if selection.classes - DEFAULT_CLASSES:
        print(
            "note: classes other than internal are bad input; sent back unchanged they will only be "
            "dead-lettered again (fix the source's record and send that instead)",
            file=err,
        )
    try:
        replays, refused = plan(read_deadletters(settings, timeout, err), selection)
        if refused:
            for line in refused:
                print(f"cannot replay the {line}", file=err)
            print(
                f"nothing sent: {len(refused)} of the chosen dead letters cannot be restored exactly; "
                "narrow the selection (--topic, --error-class, --since, --until)",
                file=err,
            )
            return 1
        for replay in replays:
            out.write(json.dumps(summary_line(replay), ensure_ascii=False) + "\n")
        out.flush()
        if replays and not dry_run:
            send(settings, replays)
    except ReplayError as exc:
        print(f"replay-deadletters: {exc}", file=err)
        return 1
    verb = "would send" if dry_run else "sent"
    counts = Counter(r.topic for r in replays)
    for topic, count in sorted(counts.items()):
        print(f"{topic}: {count} {verb}", file=err)
    print(f"{verb} {len(replays)} records" + ("" if replays else ": no dead letter matches"), file=err)
    return 0
