"""Plain Kafka clients for people: send a file of records, watch output topics.

Debian's kcat cannot talk to the local broker (see BROKER.md), so these are the
local way to feed your own data; on Apache Kafka, kcat works as well.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from stream_app.security import kafka_python_config
from stream_app.settings import Settings


def producer(settings: Settings) -> KafkaProducer:
    return KafkaProducer(linger_ms=0, acks="all", **kafka_python_config(settings))


def parse_line(line: str, default_topic: str | None) -> tuple[str, bytes | None, bytes]:
    """A line is a bare value (key = its person_id) or kcat -J form with topic/key/payload."""
    obj = json.loads(line)
    if isinstance(obj, dict) and "payload" in obj:
        topic = obj.get("topic") or default_topic
        if not isinstance(topic, str):
            raise ValueError("a kcat line without a topic needs one: give --topic")
        payload = obj["payload"]
        value = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
        key = obj.get("key")
        return topic, (key.encode() if isinstance(key, str) else None), value.encode()
    if default_topic is None:
        raise ValueError("a bare value needs a topic: give --topic")
    key = obj.get("person_id") if isinstance(obj, dict) else None
    return default_topic, (key.encode() if isinstance(key, str) else None), line.strip().encode()


def produce_lines(
    settings: Settings, lines: Iterable[str], topic: str | None, max_messages: int | None, err: TextIO
) -> int:
    sent = 0
    client = producer(settings)
    try:
        for line in lines:
            if not line.strip():
                continue
            if max_messages is not None and sent >= max_messages:
                break
            name, key, value = parse_line(line, topic)
            client.send(name, key=key, value=value)
            sent += 1
            if sent % 10000 == 0:
                print(f"sent {sent} records", file=err)
        client.flush()
    finally:
        client.close()
    print(f"sent {sent} records", file=err)
    return sent


def tail(settings: Settings, topics: list[str], from_beginning: bool) -> Iterator[dict[str, Any]]:
    """Yield records of the topics in kcat -J form, forever (Ctrl-C stops)."""
    consumer = KafkaConsumer(enable_auto_commit=False, **kafka_python_config(settings))
    parts = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
    consumer.assign(parts)
    if from_beginning:
        consumer.seek_to_beginning(*parts)
    else:
        seek_to_fetch_highwater(consumer, parts)
    try:
        for msg in consumer:
            yield as_kcat(msg)
    finally:
        consumer.close()


def seek_to_fetch_highwater(
    consumer: KafkaConsumer, parts: list[TopicPartition], timeout_s: float = 30
) -> None:
    """Start each partition at its end as fetch responses give it, not ListOffsets.

    The local broker answers ListOffsets with the last batch's base offset + 1 (BROKER.md),
    so a consumer sought to that "end" would show the rest of the last batch as new records.
    Records fetched on the way are dropped.
    """
    consumer.seek_to_end(*parts)
    deadline = time.monotonic() + timeout_s
    while any(consumer.highwater(tp) is None for tp in parts):
        if time.monotonic() > deadline:
            raise TimeoutError("no fetch response for some partitions: is the broker there?")
        consumer.poll(timeout_ms=100)
    for tp in parts:
        consumer.seek(tp, consumer.highwater(tp))


def as_kcat(msg: Any) -> dict[str, Any]:
    value = msg.value.decode("utf-8", "replace") if msg.value is not None else None
    try:
        payload: Any = json.loads(value) if value is not None else None
    except ValueError:
        payload = value
    return {
        "topic": msg.topic,
        "partition": msg.partition,
        "offset": msg.offset,
        "key": msg.key.decode("utf-8", "replace") if msg.key is not None else None,
        "payload": payload,
        "ts": msg.timestamp,
    }


def write_json_line(obj: dict[str, Any], out: TextIO = sys.stdout) -> None:
    out.write(json.dumps(obj, ensure_ascii=False) + "\n")
    out.flush()
