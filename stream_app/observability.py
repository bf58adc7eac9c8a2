"""Engine-side metrics and logs: commits, rebalances, recovery, lag, table sizes.

Domain counters are updated per record in ``Metrics.observe``; this module hooks
Faust's sensor interface and two timers for what only the engine knows.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust
from faust.sensors.monitor import Monitor
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from prometheus_client import Histogram

from stream_app.metrics import PREFIX, Metrics
from stream_app.records import money
from stream_app.rules.status import DISABILITY_PROGRAMS
from stream_app.runtime import Runtime

log = logging.getLogger("stream_app")

ERROR_CLASSES = ("encoding", "json", "schema", "key", "too_large", "internal")
KNOWN_PROGRAMS = ("dibao", "tekun", "disability_living", "disability_nursing")


class EngineSensor(faust.Sensor):
    """Commit latency, rebalances and the time from a rebalance to recovered tables."""

    def __init__(self, metrics: Metrics, input_topics: set[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics = metrics
        self.input_topics = input_topics

    def on_commit_initiated(self, consumer: Any) -> Any:
        return time.monotonic()

    def on_commit_completed(self, consumer: Any, state: Any) -> None:
        self.metrics.commit_latency.observe(time.monotonic() - state)

    def on_rebalance_start(self, app: faust.App) -> dict:
        self.metrics.rebalances.inc()
        self.metrics.ready.set(0)
        log.info("rebalance started; not ready until tables are recovered")
        return {"started": time.monotonic()}

    def on_rebalance_end(self, app: faust.App, state: dict) -> None:
        seconds = time.monotonic() - state["started"]
        self.metrics.recovery_seconds.set(seconds)
        assignment = app.consumer.assignment()
        inputs = sorted(f"{tp.topic}[{tp.partition}]" for tp in assignment if tp.topic in self.input_topics)
        log.info(
            "assigned %d input partitions (%s); tables recovered in %.1fs",
            len(inputs),
            ", ".join(inputs) or "none",
            seconds,
        )


def install(app: faust.App, runtime: Runtime) -> None:
    metrics = runtime.metrics
    inputs = runtime.input_topics

    # Series exist from the start, so a feed that never speaks after a restart is
    # still visible (and alertable) instead of absent.
    started = time.time()
    for topic in inputs:
        metrics.consumed.labels(topic)
        metrics.last_consumed.labels(topic).set(started)
        metrics.internal_errors.labels(topic)
        metrics.duplicates.labels(topic)
        for error_class in ERROR_CLASSES:
            metrics.dead_letters.labels(topic, error_class)
    # And the outputs known in advance, so the first one after a restart counts in increase().
    for tier in runtime.settings.rules.medical_tiers_fen:
        metrics.warnings.labels("MEDICAL_SELF_PAY", money(tier))
    for tier in runtime.settings.rules.household_tiers_fen:
        metrics.warnings.labels("HOUSEHOLD_SELF_PAY", money(tier))
    for rule in ("DISABILITY_NURSING_ELIGIBLE", "DUPLICATE_ASSISTANCE", "POST_DEATH_ACTIVITY"):
        metrics.warnings.labels(rule, "none")
    for program in KNOWN_PROGRAMS:
        metrics.resumes.labels(program)
        metrics.overpaid.labels(program)
        for reason in ("DEATH", "DECEASED_ENROLLMENT"):
            metrics.stops.labels(reason, program)
    for program in DISABILITY_PROGRAMS:
        metrics.stops.labels("DISABILITY_REVOKED", program)
    metrics.stops.labels("DISABILITY_LEVEL_INELIGIBLE", "disability_nursing")

    app.sensors.add(EngineSensor(metrics, inputs))
    if runtime.settings.faust_metrics:
        app.monitor = LeanPrometheusMonitor(metrics=faust_metrics(metrics))


async def refresh(app: faust.App, runtime: Runtime) -> None:
    """Gauges computed when scraped: consumer lag (fetch and committed) and persons per table."""
    metrics = runtime.metrics
    metrics.lag.clear()
    metrics.committed_lag.clear()
    metrics.committed_offset.clear()
    committed_offsets = app.consumer._committed_offset  # Faust's view: the broker's at assignment, then ours
    inputs = runtime.input_topics
    for tp in app.consumer.assignment():
        if tp.topic not in inputs:
            continue
        # The fetch high watermark: ListOffsets-based end offsets are wrong on the
        # local broker (BROKER.md), and lag computed from them would be too.
        highwater = app.consumer.highwater(tp)
        if highwater is None:
            continue
        position = runtime.positions.get((tp.topic, tp.partition))
        if position is None:
            position = await app.consumer.position(tp) or 0
        metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, highwater - position))
        # A stalled commit shows here, not above: the records are fetched and processed but
        # their offsets are not committed, so a restart would process them again.
        committed = committed_offsets.get(tp) or 0
        metrics.committed_offset.labels(tp.topic, str(tp.partition)).set(committed)
        metrics.committed_lag.labels(tp.topic, str(tp.partition)).set(max(0, highwater - committed))
    for name, table in runtime.tables.items():
        metrics.table_persons.labels(name).set(_estimate_keys(table))


class _MillisecondsToSeconds:
    """Faust observes event runtime in ms; Prometheus wants base units (promtool lints it)."""

    def __init__(self, histogram: Histogram) -> None:
        self.histogram = histogram

    def observe(self, milliseconds: float) -> None:
        self.histogram.observe(milliseconds / 1000.0)


class CachedLabels:
    """A labelled Prometheus metric whose child per label values is looked up once.

    Faust's monitor calls ``labels()`` several times for every record (received per topic
    and partition, events per stream, table reads and writes, sends): prometheus_client
    validates and converts the values on every call, a few microseconds each, about 8% of
    a worker's time behind a backlog. The children are kept here; ``remove`` and ``clear``
    (Faust drops per-partition series at a rebalance) forget them, so a series removed from
    the metric is created again, never updated unseen.
    """

    def __init__(self, metric: Any) -> None:
        self.metric = metric
        self._children: dict[tuple, Any] = {}

    def labels(self, *values: Any, **named: Any) -> Any:
        key = (values, *named.items())
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.metric.labels(*values, **named)
        return child

    def remove(self, *values: Any) -> None:
        self._children.clear()
        self.metric.remove(*values)

    def clear(self) -> None:
        self._children.clear()
        self.metric.clear()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.metric, name)


class LeanPrometheusMonitor(PrometheusMonitor):
    """Faust's Prometheus monitor, the same series and values, with the per-event stream label
    (a regex substitution on the stream's name) computed once per stream."""

    def __init__(self, metrics: FaustMetrics, **kwargs: Any) -> None:
        super().__init__(metrics, **kwargs)
        self._events_per_stream: dict[Any, Any] = {}

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> dict | None:
        state = Monitor.on_stream_event_in(self, tp, offset, stream, event)
        metrics = self._metrics
        metrics.total_events.inc()
        metrics.total_active_events.inc()
        child = self._events_per_stream.get(stream)
        if child is None:
            label = f"stream.{self._stream_label(stream)}.events"
            child = self._events_per_stream[stream] = metrics.total_events_per_stream.labels(stream=label)
        child.inc()
        return state

    def on_table_operations(self, table: Any, retrieved: int, updated: int, deleted: int) -> None:
        """A batch's table reads, writes and deletes at once (``faust_patches.BatchTable``): what
        as many ``on_table_get``, ``on_table_set`` and ``on_table_del`` calls would count."""
        counts = self._table_or_create(table)
        counts.keys_retrieved += retrieved
        counts.keys_updated += updated
        counts.keys_deleted += deleted
        operations = self._metrics.table_operations
        label = f"table.{table.name}"
        for operation, count in (
            (self.KEYS_RETRIEVED, retrieved),
            (self.KEYS_UPDATED, updated),
            (self.KEYS_DELETED, deleted),
        ):
            if count:
                operations.labels(table=label, operation=operation).inc(count)


def faust_metrics(metrics: Metrics) -> FaustMetrics:
    """Faust's own series (events, sends, table ops, assignment) in our registry and prefix."""
    prefix = f"{PREFIX}_faust"
    created = FaustMetrics.create(metrics.registry, prefix)
    metrics.registry.unregister(created.events_runtime_latency)
    runtime = Histogram(
        f"{prefix}_events_runtime_seconds",
        "Time an event spends in its agent.",
        buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0),
        registry=metrics.registry,
    )
    labelled = {
        name: CachedLabels(metric)
        for name, metric in created._asdict().items()
        if getattr(metric, "_labelnames", ())
    }
    return created._replace(events_runtime_latency=_MillisecondsToSeconds(runtime), **labelled)


def _estimate_keys(table: faust.Table) -> int:
    """RocksDB's key estimate per partition db (O(1)); a full count for other stores."""
    dbs = getattr(table.data, "_dbs", None)
    if dbs is None:
        return len(table)
    # An estimate: it also counts Faust's per-partition changelog-offset keys.
    total = 0
    for db in dbs.values():
        try:
            total += int(db.property_int_value("rocksdb.estimate-num-keys") or 0)
        except Exception:  # an old db handle closed by a rebalance
            continue
    return total
