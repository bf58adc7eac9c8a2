"""Small replacements of Faust internals, each pinned to the versions it was checked on.

faust-streaming 0.15.3, mode-streaming 0.7.1 and aiokafka 0.14.0 (see pyproject.toml).
Each patch says why it exists; ``tests/unit/test_faust_patches.py`` notices when an
upgrade breaks one, and the crash harness (``tests/integration/test_crash_harness.py``)
shows what each one prevents.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import errors as kafka_errors
from aiokafka.protocol.fetch import FetchRequest
from faust.transport import producer as faust_producer
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.utils import queues as mode_queues

log = logging.getLogger("stream_app.faust_patches")

PINNED = {"faust-streaming": "0.15.3", "mode-streaming": "0.7.1", "aiokafka": "0.14.0"}

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


# -- 1. Records dropped when flow resumes -----------------------------------------------
#
# ``FlowControlEvent.resume`` empties every stream queue. That is right after a
# suspension (a rebalance: the queued records belong to the old assignment and are
# fetched again from the committed offsets). But Faust's recovery resumes flow twice:
# once to read the changelogs, then again after it has resumed the input partitions
# and awaited a seek (``faust/tables/recovery.py`` ``on_recovery_completed``). Records
# fetched in between are already queued and their read offsets recorded, so the second
# resume silently drops them: a restart that finds a backlog skipped 49-467 records, and
# the gap then stalled every later commit of that partition (the consumer's head-of-acked
# gap check). Empty the queues only when flow really was suspended.


def _resume_flow(self: mode_queues.FlowControlEvent) -> None:
    was_suspended = self._suspend.is_set()
    self._suspend.clear()
    self._resume.set()
    if was_suspended:
        self.clear()


# -- 2. A commit before the changelog is written ---------------------------------------
#
# Table writes go to the changelog through Faust's ProducerBuffer. Before committing
# offsets the consumer calls ``producer.flush()``, whose buffer flush (a) does not count
# the message its sender task holds in hand, and (b) gives up after 0.1 s without
# progress; aiokafka's ``flush()`` then waits only for batches that already exist. So an
# offset could be committed while the state change of that record was still on its way
# to the changelog: a kill then, and a rebuild from the changelog, lose it for good.
# The buffer below counts messages put and handed to the client, and its flush waits
# until everything put before the flush began has been handed over (new writes during
# the wait do not prolong it), so aiokafka's flush then covers it.


def _buffer_put(self: Any, fut: Any) -> None:
    self._stream_app_put = getattr(self, "_stream_app_put", 0) + 1
    _original_buffer_put(self, fut)


def _counting(send_pending: Any) -> Any:
    """Count each message once its hand-over to the client is over (sent, or failed)."""

    async def counted(self: Any, fut: Any) -> None:
        try:
            await send_pending(self, fut)
        finally:
            self._stream_app_sent = getattr(self, "_stream_app_sent", 0) + 1

    return counted


async def _buffer_flush(self: Any) -> None:
    if self.app is not None and self.app.conf.producer_threaded:
        await _original_buffer_flush(self)  # not used by this project; left as Faust has it
        return
    target = getattr(self, "_stream_app_put", 0)
    waited = 0.0
    while getattr(self, "_stream_app_sent", 0) < target:
        if self.state != "running":
            raise RuntimeError("Cannot flush: Producer not Running")
        self.message_sent.clear()
        try:
            await asyncio.wait_for(self.message_sent.wait(), timeout=1.0)
        except TimeoutError:
            waited += 1.0
            if waited % 10 == 0:
                log.warning(
                    "changelog writes not handed to the broker client after %.0fs (%d left); "
                    "offsets are not committed meanwhile",
                    waited,
                    target - getattr(self, "_stream_app_sent", 0),
                )


_original_buffer_put = faust_producer.ProducerBuffer.put
_original_send_pending = faust_producer.ProducerBuffer._send_pending
_original_buffer_flush = faust_producer.ProducerBuffer.flush
_buffer_send_pending = _counting(_original_send_pending)


# -- 3. Table recovery stops short of the changelog's end (local broker) ------------------
#
# Recovery reads each changelog partition up to its "highwater", which Faust takes from
# ``AIOKafkaConsumerThread._highwaters``: aiokafka's ``end_offsets``, a ListOffsets request.
# The local tansu broker answers ListOffsets with "base offset of the last batch + 1", so
# after a multi-record batch recovery stopped inside it and silently dropped the keys written
# in the rest of that batch (and a restart on a kept data dir, whose persisted offset was
# past that answer, died with ``ConsistencyError``). The high watermark carried in fetch
# responses is right on tansu. So, on the local broker only, the highwaters are completed by
# one small fetch per broker at the ListOffsets answer (which is never past the real end, so
# the fetch is valid; it returns at most the last batch). On Apache Kafka ListOffsets is the
# high watermark already, and Faust's own path stays in place.

_highwaters_from_fetch = False
_FETCH_TIMEOUT_S = 30.0  # Faust bounds the whole step by broker_request_timeout (90 s) too


async def fetch_high_watermarks(client: Any, offsets: Mapping[Any, int]) -> dict[Any, int]:
    """The high watermark that fetch responses give, per partition in ``offsets``.

    ``client`` is an aiokafka ``AIOKafkaClient``; ``offsets`` maps each partition (a
    topic/partition named tuple) to the offset to fetch at, which must be in range: its
    end offset by ListOffsets. One fetch per leader, at most a batch per partition read.
    """
    pending = dict(offsets)
    found: dict[Any, int] = {}
    # tansu answers a fetch whose max wait is 0 with no partitions at all; Kafka answers
    # at once when min_bytes is 0. Grow the wait while partitions are still unanswered.
    wait_ms = 10
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _FETCH_TIMEOUT_S
    while pending:
        if loop.time() > deadline:
            raise kafka_errors.KafkaTimeoutError(f"no fetch high watermark for {sorted(pending)}")
        by_node: dict[int, dict[str, list[tuple[int, int, int]]]] = defaultdict(lambda: defaultdict(list))
        stale = False
        for tp, offset in pending.items():
            node = client.cluster.leader_for_partition(tp)
            if node is None or node == -1:
                stale = True
                continue
            by_node[node][tp.topic].append((tp.partition, offset, 1))  # max 1 byte: one batch comes anyway
        by_name = {(tp.topic, tp.partition): tp for tp in pending}
        for node, topics in by_node.items():
            request = FetchRequest(wait_ms, 0, 1 << 20, 0, list(topics.items()))  # 0: read uncommitted
            try:
                response = await client.send(node, request)
            except kafka_errors.KafkaError as exc:
                if not exc.retriable:
                    raise
                stale = True  # the node went away or is not ready: new metadata, then again
                continue
            for topic, partitions in response.topics:
                for partition, error_code, highwater, *_ in partitions:
                    tp = by_name.get((topic, partition))
                    if tp is None:
                        continue
                    error = kafka_errors.for_code(error_code)
                    if error is kafka_errors.NoError:
                        found[tp] = highwater
                        del pending[tp]
                    elif error.retriable or error.invalid_metadata:
                        stale = True
                    else:
                        raise error(f"fetching the high watermark of {tp}")
        if stale:
            await client.force_metadata_update()
            await asyncio.sleep(0.1)  # a retry backoff, as aiokafka's own ListOffsets has
        wait_ms = min(wait_ms * 4, 500)
    return found


async def _highwaters(self: Any, partitions: Sequence[Any]) -> Mapping[Any, int]:
    ends = await _original_highwaters(self, partitions)
    if not _highwaters_from_fetch or self.consumer.in_transaction:
        return ends
    consumer = self._ensure_consumer()
    fetched = await fetch_high_watermarks(consumer._client, {tp: ends[tp] for tp in partitions if tp in ends})
    # max: a fetch high watermark below ListOffsets would be a broker fault of its own; never read less.
    highwaters = {tp: max(end, fetched.get(tp, end)) for tp, end in ends.items()}
    short = sum(1 for tp, end in ends.items() if highwaters[tp] > end)
    if short:
        log.info(
            "recovery reads %d of %d changelog partitions past the broker's ListOffsets answer, "
            "to the fetch high watermark (%d records more)",
            short,
            len(ends),
            sum(highwaters[tp] - end for tp, end in ends.items()),
        )
    return highwaters


def set_highwaters_from_fetch(enabled: bool) -> None:
    """True on the local broker: recovery reads each changelog to the fetch high watermark."""
    global _highwaters_from_fetch
    _highwaters_from_fetch = enabled


_original_highwaters = faust_aiokafka.AIOKafkaConsumerThread._highwaters


def install() -> None:
    """Apply the patches (idempotent). Called when the app is built."""
    mode_queues.FlowControlEvent.resume = _resume_flow  # type: ignore[method-assign]
    faust_producer.ProducerBuffer.put = _buffer_put  # type: ignore[method-assign]
    faust_producer.ProducerBuffer._send_pending = _buffer_send_pending  # type: ignore[method-assign]
    faust_producer.ProducerBuffer.flush = _buffer_flush  # type: ignore[method-assign]
    faust_aiokafka.AIOKafkaConsumerThread._highwaters = _highwaters  # type: ignore[method-assign]


def uninstall() -> None:
    """Faust as released (for tests that show what a patch prevents)."""
    mode_queues.FlowControlEvent.resume = _original_resume  # type: ignore[method-assign]
    faust_producer.ProducerBuffer.put = _original_buffer_put  # type: ignore[method-assign]
    faust_producer.ProducerBuffer._send_pending = _original_send_pending  # type: ignore[method-assign]
    faust_producer.ProducerBuffer.flush = _original_buffer_flush  # type: ignore[method-assign]
    faust_aiokafka.AIOKafkaConsumerThread._highwaters = _original_highwaters  # type: ignore[method-assign]


_original_resume = mode_queues.FlowControlEvent.resume
