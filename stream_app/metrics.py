"""Prometheus series of the worker, and the per-record bookkeeping that updates them.

No label ever carries a person or household id.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from stream_app.processing import Outcome, Processed
from stream_app.records import HouseholdSettlement, PaymentResume, PaymentStop

log = logging.getLogger("stream_app.agents")  # per-record lines, as docs/operations.md lists them

# ``*_created`` series double the output and nobody alerts on them.
disable_created_metrics()

PREFIX = "benefit_integrity"


class Metrics:
    """One registry per worker (tests build several in one process)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.consumed = Counter(
            f"{PREFIX}_records_consumed", "Input records consumed, per input topic.", ["topic"], registry=r
        )
        self.dead_letters = Counter(
            f"{PREFIX}_dead_letters",
            "Input records sent to the dead-letter topic, per input topic and error class.",
            ["topic", "error_class"],
            registry=r,
        )
        self.warnings = Counter(
            f"{PREFIX}_warnings",
            "Assistance warnings emitted, per rule and tier (tier is 'none' for rules without tiers).",
            ["rule", "tier"],
            registry=r,
        )
        self.stops = Counter(
            f"{PREFIX}_payment_stops",
            "Payment stops emitted, per reason and program.",
            ["reason", "program"],
            registry=r,
        )
        self.overpaid = Counter(
            f"{PREFIX}_overpaid_yuan",
            "Yuan paid after a death before its registration (R9 overpaid_amount), per program.",
            ["program"],
            registry=r,
        )
        self.resumes = Counter(
            f"{PREFIX}_payment_resumes", "Payment resumes emitted, per program.", ["program"], registry=r
        )
        self.unknown_reversals = Counter(
            f"{PREFIX}_unknown_reversals",
            "Reversals naming a settlement the person's state does not hold (nothing changed).",
            registry=r,
        )
        self.ignored_withdrawals = Counter(
            f"{PREFIX}_ignored_withdrawals",
            "Death withdrawals naming no death in force (nothing changed).",
            registry=r,
        )
        self.duplicates = Counter(
            f"{PREFIX}_duplicate_records",
            "Records redelivered with an event_id already processed (counted once).",
            ["topic"],
            registry=r,
        )
        self.household_forwards = Counter(
            f"{PREFIX}_household_forwards",
            "Settlements and reversals re-keyed to the internal household topic (R7's person side).",
            registry=r,
        )
        self.latency = Histogram(
            f"{PREFIX}_processing_latency_seconds",
            "From the input record's Kafka timestamp to its outputs acknowledged by the broker.",
            ["topic"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
            registry=r,
        )
        self.batch_records = Histogram(
            f"{PREFIX}_batch_records",
            "Input records handled as one batch (outputs sent together, state written once per"
            " person, then acknowledged): 1 while records arrive slower than they are handled.",
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
            registry=r,
        )
        self.last_event = Gauge(
            f"{PREFIX}_last_event_timestamp_seconds",
            "Event time of the newest record seen per input topic (unix seconds).",
            ["topic"],
            registry=r,
        )
        self.last_consumed = Gauge(
            f"{PREFIX}_last_consumed_timestamp_seconds",
            "Wall-clock time of the last record consumed per input topic (unix seconds).",
            ["topic"],
            registry=r,
        )
        self.table_persons = Gauge(
            f"{PREFIX}_table_persons", "Persons held in each table on this worker.", ["table"], registry=r
        )
        self.rebalances = Counter(f"{PREFIX}_rebalances", "Consumer group rebalances seen.", registry=r)
        self.recovery_seconds = Gauge(
            f"{PREFIX}_table_recovery_seconds", "Duration of the last table recovery.", registry=r
        )
        self.lag = Gauge(
            f"{PREFIX}_consumer_lag_records",
            "Records not yet consumed per assigned input partition (from the fetch high watermark).",
            ["topic", "partition"],
            registry=r,
        )
        self.commit_latency = Histogram(
            f"{PREFIX}_commit_latency_seconds",
            "Time to commit consumer offsets.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=r,
        )
        self.ready = Gauge(
            f"{PREFIX}_ready", "1 when partitions are assigned and tables recovered.", registry=r
        )
        self.internal_errors = Counter(
            f"{PREFIX}_internal_errors",
            "Records whose processing raised an unexpected error (sent to the dead letters as internal).",
            ["topic"],
            registry=r,
        )
        self.output_retries = Counter(
            f"{PREFIX}_output_send_retries",
            "Times outputs were sent again because the broker did not acknowledge them.",
            registry=r,
        )
        self.committed_offset = Gauge(
            f"{PREFIX}_committed_offset",
            "The group's committed offset per assigned input partition (0 before the first commit).",
            ["topic", "partition"],
            registry=r,
        )
        self.committed_lag = Gauge(
            f"{PREFIX}_committed_lag_records",
            "Records after the group's committed offset per assigned input partition: grows while"
            " commits stall, even when consumer_lag_records (the fetch position) is 0.",
            ["topic", "partition"],
            registry=r,
        )
        #: Event time of the newest record per input topic: a late record never moves the gauge back.
        self.newest_event_s: dict[str, float] = {}
        self._per_topic: dict[str, tuple[Any, Any, Any, Any]] = {}
        #: Records observed per topic since the last ``observe_batch``: the consumed counter
        #: and the last-consumed gauge are updated once per batch, not per record.
        self._consumed_in_batch: dict[str, int] = {}

    def _series(self, topic: str) -> tuple[Any, Any, Any, Any]:
        # ``labels()`` costs microseconds a call: the series every record touches, looked up once.
        series = self._per_topic.get(topic)
        if series is None:
            series = (
                self.consumed.labels(topic),
                self.last_consumed.labels(topic),
                self.last_event.labels(topic),
                self.latency.labels(topic),
            )
            self._per_topic[topic] = series
        return series

    def observe_batch(self, records: int) -> None:
        """A batch done: its records counted as consumed (per topic), its size observed."""
        counted, self._consumed_in_batch = self._consumed_in_batch, {}
        now = time.time()
        for topic, count in counted.items():
            consumed, last_consumed, _, _ = self._series(topic)
            consumed.inc(count)
            last_consumed.set(now)
        self.batch_records.observe(records)

    def observe(
        self, topic: str, partition: int, offset: int, timestamp_s: float | None, processed: Processed
    ) -> None:
        """Count a record done: its outcome, its outputs, its latency (from its Kafka timestamp
        ``timestamp_s``); it counts as consumed at the batch's ``observe_batch``. The caller
        (``Runtime.observe``) keeps an error here from stopping the agent."""
        in_batch = self._consumed_in_batch
        in_batch[topic] = in_batch.get(topic, 0) + 1
        event_us = processed.event_time_us  # computed on access: read it once
        if event_us is not None:
            event_s = event_us / 1e6
            if event_s > self.newest_event_s.get(topic, float("-inf")):
                self.newest_event_s[topic] = event_s
                self._series(topic)[2].set(event_s)
        outcome = processed.outcome
        if outcome is Outcome.DEAD_LETTER:
            error_class = processed.error_class or "unknown"
            self.dead_letters.labels(topic, error_class).inc()
            log.info("dead letter %s[%d]@%d: %s", topic, partition, offset, error_class)
            return
        if outcome is Outcome.UNKNOWN_REVERSAL:
            self.unknown_reversals.inc()
        elif outcome is Outcome.IGNORED_WITHDRAWAL:
            self.ignored_withdrawals.inc()
        elif outcome is Outcome.DUPLICATE:
            self.duplicates.labels(topic).inc()
        for item in processed.emits:
            value = item.value
            if isinstance(value, PaymentStop):
                self.stops.labels(value.reason, value.program).inc()
                if value.overpaid_amount is not None:
                    self.overpaid.labels(value.program).inc(float(value.overpaid_amount))
            elif isinstance(value, PaymentResume):
                self.resumes.labels(value.program).inc()
            elif isinstance(value, HouseholdSettlement):
                self.household_forwards.inc()
            else:
                self.warnings.labels(value.rule, getattr(value, "tier", "none")).inc()  # type: ignore[union-attr]
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "emitted %s to %s caused by %s[%d]@%d event_id=%s",
                    type(value).__name__,
                    item.topic,
                    topic,
                    partition,
                    offset,
                    processed.event_id,
                )
        if processed.emits and timestamp_s:
            self._series(topic)[3].observe(max(0.0, time.time() - timestamp_s))
