"""Small replacements of Faust internals, each pinned to the versions it was checked on.

faust-streaming 0.15.3 and aiokafka 0.14.0 (see pyproject.toml). Each patch says why
it exists; ``tests/unit/test_faust_patches.py`` notices when an upgrade breaks one.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

_original_create_worker_consumer = faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer
_fetch_max_wait_ms: int | None = None


def _create_worker_consumer(self: Any, transport: Any) -> Any:
    consumer = _original_create_worker_consumer(self, transport)
    if _fetch_max_wait_ms is not None:
        consumer._fetch_max_wait_ms = _fetch_max_wait_ms  # read by aiokafka's Fetcher at start()
    return consumer


def set_fetch_wait(milliseconds: int | None) -> None:
    """``None`` keeps Faust's own value. Faust fixes the worker consumer's ``fetch_max_wait_ms`` at 1500.

    Apache Kafka answers a fetch as soon as data arrives, so that only bounds idle
    polls. The local tansu broker holds a fetch over several partitions for the whole
    wait (measured with a plain aiokafka consumer: 382 ms median at 1500, 13 ms at
    100), which put ~0.75 s between a record and its output. Local broker only.
    """
    global _fetch_max_wait_ms
    _fetch_max_wait_ms = milliseconds
    faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer
