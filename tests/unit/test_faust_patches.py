"""The pinned Faust patches still reach the objects they mean to change."""

from __future__ import annotations

import asyncio

from stream_app.app import create_app
from stream_app.settings import load


def worker_consumer_fetch_wait(tmp_path, broker: str) -> int:
    async def build() -> int:
        app, _ = create_app(load({"STREAM_APP_BROKER": broker, "STREAM_APP_DATA_DIR": str(tmp_path)}))
        thread = app.consumer._thread
        consumer = thread._create_worker_consumer(app.transport)
        return consumer._fetch_max_wait_ms

    return asyncio.run(build())


def test_local_broker_gets_a_short_fetch_wait(tmp_path):
    assert worker_consumer_fetch_wait(tmp_path, "kafka://127.0.0.1:9092") == 100


def test_real_kafka_keeps_fausts_fetch_wait(tmp_path):
    assert worker_consumer_fetch_wait(tmp_path, "kafka://kafka-bootstrap.kafka.svc:9093") == 1500
