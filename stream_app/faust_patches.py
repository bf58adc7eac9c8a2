"""Small replacements of Faust internals, each pinned to the versions it was checked on.

faust-streaming 0.15.3, mode-streaming 0.7.1 and aiokafka 0.14.0 (see pyproject.toml).
Each patch says why it exists; ``tests/unit/test_faust_patches.py`` notices when an
upgrade breaks one, and the crash harness (``tests/integration/test_crash_harness.py``)
shows what each one prevents.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

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


# -- 3. A partition never committed is not rewound --------------------------------------
#
# Faust drops records it has fetched but not handed to the agent when flow stops or the
# generation changes (a rebalance, a recovery), and relies on the seek to the committed
# offsets that ends every recovery to fetch them again. aiokafka's ``seek_to_committed``
# seeks only where an offset above 0 was committed: a partition whose records were never
# committed (a new deployment, a feed that has been quiet, a worker killed before its
# first commit) stays where the dropped fetch left it, and those records are never
# processed. Found by the crash harness (seed 616421): a restarted worker began a
# partition at offset 111 with nothing committed, and 108 records (their warnings and
# stops) were lost; another run stalled with nothing committed and nothing left to read.
# Such partitions are sent back to where the reset policy starts a new group.


async def _seek_to_committed(self: Any) -> Any:
    consumer = self._ensure_consumer()
    committed = await self.call_thread(consumer.seek_to_committed)
    acks_enabled_for = self.app.topics.acks_enabled_for  # the inputs; changelogs are Faust's own
    fresh = [tp for tp, offset in committed.items() if not offset or offset < 0]
    fresh = [tp for tp in fresh if acks_enabled_for(tp.topic)]
    if fresh:
        if self.app.conf.consumer_auto_offset_reset == "latest":
            await self.call_thread(consumer.seek_to_end, *fresh)
        else:
            await self.call_thread(consumer.seek_to_beginning, *fresh)
    return committed


_original_seek_to_committed = faust_aiokafka.AIOKafkaConsumerThread.seek_to_committed
_original_buffer_put = faust_producer.ProducerBuffer.put
_original_send_pending = faust_producer.ProducerBuffer._send_pending
_original_buffer_flush = faust_producer.ProducerBuffer.flush
_buffer_send_pending = _counting(_original_send_pending)


def install() -> None:
    """Apply the patches (idempotent). Called when the app is built."""
    mode_queues.FlowControlEvent.resume = _resume_flow
    faust_producer.ProducerBuffer.put = _buffer_put
    faust_producer.ProducerBuffer._send_pending = _buffer_send_pending
    faust_producer.ProducerBuffer.flush = _buffer_flush
    faust_aiokafka.AIOKafkaConsumerThread.seek_to_committed = _seek_to_committed


def uninstall() -> None:
    """Faust as released (for tests that show what a patch prevents)."""
    mode_queues.FlowControlEvent.resume = _original_resume
    faust_producer.ProducerBuffer.put = _original_buffer_put
    faust_producer.ProducerBuffer._send_pending = _original_send_pending
    faust_producer.ProducerBuffer.flush = _original_buffer_flush
    faust_aiokafka.AIOKafkaConsumerThread.seek_to_committed = _original_seek_to_committed


_original_resume = mode_queues.FlowControlEvent.resume
