"""What the agents and views share: settings, the per-record processor, staged state, outputs, metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stream_app.metrics import Metrics
from stream_app.processing import (
    CONSUMED_TOPICS,
    HOUSEHOLD_TOPIC,
    Emit,
    Processed,
    Processor,
    processing_failed,
    stamped,
)
from stream_app.records import encode
from stream_app.rules.household import HouseholdState
from stream_app.rules.medical import MedicalState
from stream_app.rules.status import StatusState
from stream_app.settings import Settings
from stream_app.state import DictState, StagedState

log = logging.getLogger("stream_app.agents")  # per-record lines, as docs/operations.md lists them


async def _send_through_faust(records: Sequence[tuple[Any, bytes | None, bytes]]) -> list[Any]:
    return [await topic.send(key=key, value=value) for topic, key, value in records]


@dataclass
class Runtime:
    settings: Settings
    processor: Processor
    medical_state: StagedState[MedicalState]
    status_state: StagedState[StatusState]
    #: Logical output topic -> the Faust topic it is sent through.
    outputs: dict[str, Any]
    metrics: Metrics = field(default_factory=Metrics)
    tables: dict[str, Any] = field(default_factory=dict)
    #: The tables' changelog writers (``send()`` hands queued changelog records to the producer).
    changelogs: list[Any] = field(default_factory=list)
    #: Next offset to consume per input (topic, partition), for the lag gauge.
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    #: Seconds between attempts while the broker does not acknowledge outputs.
    retry_backoff_s: tuple[float, float] = (0.5, 10.0)
    #: The household agent's state (R7); the processor's ``household_state`` in the worker.
    household_state: StagedState[HouseholdState] = field(default_factory=lambda: StagedState(DictState()))
    #: The household table's changelog writer, sent by the household agent only.
    household_changelogs: list[Any] = field(default_factory=list)
    #: Sends outputs: [(topic, key, value)] -> futures, all acknowledged once all are done. The
    #: worker uses ``faust_patches.send_all`` (what ``Topic.send`` does, in record batches).
    send: Callable[[Sequence[tuple[Any, bytes | None, bytes]]], Awaitable[list[Any]]] = field(
        default=_send_through_faust
    )

    @property
    def input_topics(self) -> set[str]:
        """Every topic the worker consumes, the internal household topic included (lag, logs)."""
        return {self.settings.topic(logical) for logical in CONSUMED_TOPICS}

    def __post_init__(self) -> None:
        # Looked up once: every record asks which agent's states it belongs to.
        self._household_topic = self.settings.topic(HOUSEHOLD_TOPIC)

    def _staged(self, topic: str | None) -> tuple[StagedState[Any], ...]:
        # The person agent and the household agent run side by side, each between a deliver
        # and a save: each flushes (or drops) only its own staged writes, never the other's,
        # whose outputs may not be acknowledged yet.
        if topic is not None and topic == self._household_topic:
            return (self.household_state,)
        return (self.medical_state, self.status_state)

    def _changelogs(self, topic: str | None) -> list[Any]:
        # As ``_staged``: an agent hands over only its own tables' changelog records, so its
        # wait for them never returns while the other agent's are still on their way.
        if topic is not None and topic == self._household_topic:
            return self.household_changelogs
        return self.changelogs

    def process(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None
    ) -> Processed:
        """The record's outputs, its state writes staged. A defect in one record never stops the
        partition: its staged writes are dropped (those of the records before it in a batch
        stay) and it becomes an ``internal`` dead letter."""
        for state in self._staged(topic):
            state.begin()
        try:
            return self.processor.process(topic, partition, offset, key, value)
        except Exception as exc:
            for state in self._staged(topic):
                state.rollback()
            self.metrics.internal_errors.labels(topic).inc()
            log.error(
                "internal error on %s[%d]@%d (%s); sent to the dead letters, state unchanged",
                topic,
                partition,
                offset,
                type(exc).__name__,
            )
            limit = self.settings.max_record_bytes
            return processing_failed(exc, topic, partition, offset, key, value, limit)

    async def deliver(self, emits: Sequence[Emit]) -> None:
        """Send the outputs and wait until the broker has acknowledged every one of them.

        The outputs of a record, or of a whole batch: all are sent, then all awaited.
        Until then the records' state is not written, so a kill here replays them
        and sends the same outputs again. While the broker does not acknowledge, retry
        (same records, same ids): an output is never dropped.
        """
        if not emits:
            return
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        records = []
        for item in emits:
            records.append((self.outputs[item.topic], item.key, encode(stamped(item.value, now))))
        delay, most = self.retry_backoff_s
        while True:
            try:
                pending = await self.send(records)
                await asyncio.gather(*pending)
                return
            except Exception as exc:  # any producer failure: retry, never drop
                self.metrics.output_retries.inc()
                log.warning("outputs not acknowledged by the broker (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, most)

    async def save_state(self, topic: str | None = None) -> None:
        """Write the staged state of the records whose outputs were delivered, for the agent
        that reads ``topic`` (None: the person agent): each key's last state once, in the
        partition of the record that wrote it; return once every changelog record is in the
        producer client (so the flush before a commit covers it)."""
        for state in self._staged(topic):
            state.flush()
        changelogs = self._changelogs(topic)
        for changelog in changelogs:
            # Every table's local writes before the first wait: a view never sees one table's
            # new state beside another's old one for longer than the flush itself.
            write_store = getattr(changelog, "write_store", None)
            if write_store is not None:
                write_store()
        for changelog in changelogs:
            delay, most = self.retry_backoff_s
            while True:
                try:
                    await changelog.send()
                    break
                except Exception as exc:  # the producer refused a record: retry, never skip one
                    log.warning(
                        "changelog records not taken by the producer (%s); retrying in %.1fs", exc, delay
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, most)

    def discard_state(self, topic: str | None = None) -> None:
        for state in self._staged(topic):
            state.discard()

    def observe(
        self, topic: str, partition: int, offset: int, timestamp_s: float | None, processed: Processed
    ) -> None:
        """Metric bookkeeping for a record done. It never raises: a bug here must not stop the
        agent after the record's outputs and state are written but before it is acknowledged."""
        try:
            self.positions[(topic, partition)] = offset + 1
            self.metrics.observe(topic, partition, offset, timestamp_s, processed)
        except Exception:
            log.exception("metric bookkeeping failed for %s[%d]@%d", topic, partition, offset)

    def observe_batch(self, records: int) -> None:
        """Metric bookkeeping for a batch done; never raises (as ``observe``)."""
        try:
            self.metrics.observe_batch(records)
        except Exception:
            log.exception("metric bookkeeping failed for a batch of %d records", records)
