"""The real local broker (one per session) and real worker processes (per test).

Every test gets its own topic names and app id, so tests never see each other's
records, and talks to the worker only as a user would: Kafka topics and HTTP.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from stream_app import broker
from stream_app.settings import DEFAULT_TOPICS, load
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def broker_address() -> Iterator[str]:
    port = free_port()
    proc = broker.start("127.0.0.1", port, quiet=True)  # waits (bounded) until it listens
    yield f"127.0.0.1:{port}"
    broker.stop(proc)


class Worker:
    """A ``stream-app worker`` subprocess with its own data dir, web port and log."""

    def __init__(self, env: dict[str, str], log_path: Path, module: str = "stream_app") -> None:
        self.env = env
        self.log_path = log_path
        self.module = module  # run as ``python -m MODULE worker`` from the repository root
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def web(self) -> str:
        return f"http://127.0.0.1:{self.env['STREAM_APP_WEB_PORT']}"

    def start(self, wait_ready: bool = True) -> Worker:
        log = open(self.log_path, "ab")  # noqa: SIM115 (the child owns it)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, "worker"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        log.close()
        if wait_ready:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 120) -> None:
        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")
            return self.get("/readyz")[0] == 200

        try:
            wait_until(ready, timeout, "the worker to be ready")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log_tail()}") from None

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(self.web + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                body = resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            body, status = exc.read(), exc.code
        except (urllib.error.URLError, OSError):
            return 0, None
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode("utf-8", "replace")

    def metrics(self) -> str:
        status, body = self.get("/metrics")
        assert status == 200
        return body

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"worker did not stop within {timeout}s:\n{self.log_tail()}") from None
        return self.proc.returncode

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


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
    env.update({f"STREAM_APP_TOPIC_{logical}": name for logical, name in topics.items()})
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
        port = free_port()
        env = {
            **scenario["env"],
            "STREAM_APP_DATA_DIR": str(scenario["tmp"] / data_dir),
            "STREAM_APP_WEB_PORT": str(port),
            "STREAM_APP_CANONICAL_URL": f"http://127.0.0.1:{port}",
            **extra_env,
        }
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
    from stream_app.processing import DictState, Processor

    settings = load(env)
    processor = Processor(settings, DictState(), DictState())
    outputs: list[Any] = []
    for topic, meta, (key, raw) in sent:
        outputs.extend(processor.process(topic, meta.partition, meta.offset, key, raw).emits)
    return outputs
