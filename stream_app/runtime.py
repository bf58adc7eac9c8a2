"""What the agents and views share: settings, the per-record processor, staged state, outputs, metrics."""

from __future__ import annotations

import asyncio
import logging
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
    #: Next offset to consume per input (topic, partition), for the lag gauge.
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    #: Seconds between attempts while the broker does not acknowledge outputs.
    retry_backoff_s: tuple[float, float] = (0.5, 10.0)
    #: The household agent's state (R7); the processor's ``household_state`` in the worker.
    household_state: StagedState[HouseholdState] = field(default_factory=lambda: StagedState(DictState()))

    @property
    def input_topics(self) -> set[str]:
        """Every topic the worker consumes, the internal household topic included (lag, logs)."""
        return {self.settings.topic(logical) for logical in CONSUMED_TOPICS}

    def _staged(self, topic: str | None) -> tuple[StagedState[Any], ...]:
        # The person agent and the household agent run side by side, each between a deliver
        # and a save: each flushes (or drops) only its own staged writes, never the other's,
        # whose outputs may not be acknowledged yet.
        if topic is not None and topic == self.settings.topic(HOUSEHOLD_TOPIC):
            return (self.household_state,)
        return (self.medical_state, self.status_state)

    def process(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None
    ) -> Processed:
        """The record's outputs, its state writes staged. A defect in one record never stops the
        partition: its staged writes are dropped and it becomes an ``internal`` dead letter."""
        try:
            return self.processor.process(topic, partition, offset, key, value)
        except Exception as exc:
            self.discard_state(topic)
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

    async def deliver(self, emits: tuple[Emit, ...]) -> None:
        """Send the outputs and wait until the broker has acknowledged every one of them.

        Until then the record's state is not written, so a kill here replays the record
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
                pending = [await topic.send(key=key, value=value) for topic, key, value in records]
                await asyncio.gather(*pending)
                return
            except Exception as exc:  # any producer failure: retry, never drop
                self.metrics.output_retries.inc()
                log.warning("outputs not acknowledged by the broker (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, most)

    def save_state(self, topic: str | None = None) -> None:
        """Write the staged state of the records whose outputs were delivered: the states of
        the agent that reads ``topic`` (None: the person agent's)."""
        for state in self._staged(topic):
            state.flush()

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
