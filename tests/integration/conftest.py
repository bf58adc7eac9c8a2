"""The real local broker (one per session) and real worker processes (per test).

Every test gets its own topic names and app id, so tests never see each other's
records, and talks to the worker only as a user would: Kafka topics and HTTP.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from stream_app import harness
from stream_app.harness import free_port as free_port  # re-exported: tests take ports from here
from stream_app.harness import start_broker, topic_env, worker_env
from stream_app.processing import DictState, Processor
from stream_app.settings import DEFAULT_TOPICS, load
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def broker_address() -> Iterator[str]:
    local = start_broker()  # a free port; listening (bounded wait) when it returns
    yield local.address
    local.stop()


class Worker(harness.Worker):
    """A ``stream-app worker`` subprocess with its own data dir, web port and log, run from the
    repository root (so ``module`` may be a test's own app, e.g. ``tests.integration.faulty_worker``)."""

    def __init__(self, env: dict[str, str], log_path: Path, module: str = "stream_app") -> None:
        super().__init__(env, log_path, module, cwd=ROOT)

    def metrics(self) -> str:
        status, body = self.get("/metrics")
        assert status == 200
        return body


class Kafka:
    """Plain kafka-python clients on the test's own topics."""

    def __init__(self, address: str, topics: dict[str, str]) -> None:
        self.address = address
        self.topics = topics
        self.producer = KafkaProducer(bootstrap_servers=[address], linger_ms=0, acks="all")
        self._readers: dict[str, KafkaConsumer] = {}
        self.received: dict[str, list[Any]] = {}

    def send(self, logical: str, value: Any, key: str | bytes | None = "auto") -> Any:
        """Send one record; ``value`` is a dict (sent as JSON) or raw bytes. Returns its metadata."""
        raw = value if isinstance(value, bytes) else json.dumps(value, ensure_ascii=False).encode()
        if key == "auto":
            key = value.get("person_id") if isinstance(value, dict) else None
        if isinstance(key, str):
            key = key.encode()
        return self.producer.send(self.topics[logical], key=key, value=raw).get(timeout=30)

    def _reader(self, logical: str) -> KafkaConsumer:
        if logical not in self._readers:
            topic = self.topics[logical]
            consumer = KafkaConsumer(bootstrap_servers=[self.address], enable_auto_commit=False)
            parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            assert parts, f"topic {topic} does not exist"
            consumer.assign(parts)
            consumer.seek_to_beginning(*parts)
            self._readers[logical] = consumer
            self.received[logical] = []
        return self._readers[logical]

    def read(self, logical: str) -> list[Any]:
        """Everything received so far on an output topic (values parsed as JSON)."""
        reader = self._reader(logical)
        for records in reader.poll(timeout_ms=200).values():
            for msg in records:
                self.received[logical].append(
                    {"_key": msg.key.decode() if msg.key else None, **json.loads(msg.value)}
                )
        return self.received[logical]

    def wait_for(self, logical: str, count: int, timeout: float = 60) -> list[Any]:
        wait_until(lambda: len(self.read(logical)) >= count, timeout, f"{count} records on {logical}")
        return self.read(logical)

    def close(self) -> None:
        self.producer.close()
        for reader in self._readers.values():
            reader.close()


@pytest.fixture
def scenario(broker_address: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Topic names, app id and environment of one test; workers made from it share them."""
    tag = uuid.uuid4().hex[:8]
    topics = {logical: f"t{tag}.{name}" for logical, name in DEFAULT_TOPICS.items()}
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_APP_")}
    env.update(topic_env(topics))
    env.update(
        {
            "STREAM_APP_BROKER": f"kafka://{broker_address}",
            "STREAM_APP_APP_ID": f"bi-{tag}",
            "STREAM_APP_PARTITIONS": "4",
            "PYTHONUNBUFFERED": "1",
        }
    )
    yield {"tag": tag, "topics": topics, "env": env, "tmp": tmp_path, "address": broker_address}


@pytest.fixture
def make_worker(scenario: dict[str, Any]) -> Iterator[Any]:
    workers: list[Worker] = []

    def make(data_dir: str = "state", module: str = "stream_app", **extra_env: str) -> Worker:
        env = worker_env(scenario["env"], scenario["tmp"] / data_dir, free_port(), **extra_env)
        worker = Worker(env, scenario["tmp"] / f"worker-{len(workers)}.log", module)
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        if worker.proc is not None and worker.proc.poll() is None:
            worker.stop(signal.SIGKILL)


@pytest.fixture
def kafka(scenario: dict[str, Any], make_worker: Any) -> Iterator[Kafka]:
    client = Kafka(scenario["address"], scenario["topics"])
    yield client
    client.close()


def expected_outputs(env: dict[str, str], sent: list[tuple[str, Any, Any]]) -> list[Any]:
    """What the contract's rules say these records give, by the same pure code (ids included)."""
    settings = load(env)
    processor = Processor(settings, DictState(), DictState())
    outputs: list[Any] = []
    for topic, meta, (key, raw) in sent:
        processed = processor.process(topic, meta.partition, meta.offset, key, raw)
        outputs.extend(processor.with_households(processed))  # R7's re-keyed records: internal
    return outputs
