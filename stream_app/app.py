"""Build the Faust app: topics, tables, agents, web views. Nothing runs at import."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import faust
from msgspec.structs import replace

from stream_app.faust_patches import set_fetch_wait
from stream_app.metrics import Metrics
from stream_app.processing import INPUT_TYPES, Emit, Processed, Processor
from stream_app.records import DeadLetter, PaymentResume, PaymentStop, encode
from stream_app.rules.medical import MedicalState
from stream_app.rules.status import StatusState
from stream_app.security import faust_credentials
from stream_app.settings import Settings
from stream_app.state import TableState

log = logging.getLogger("stream_app")


@dataclass
class Runtime:
    """What agents and views share: settings, the per-record processor, outputs, metrics."""

    settings: Settings
    app: faust.App
    processor: Processor
    medical_state: TableState[MedicalState]
    status_state: TableState[StatusState]
    outputs: dict[str, faust.TopicT]
    metrics: Metrics = field(default_factory=Metrics)
    tables: dict[str, faust.Table] = field(default_factory=dict)
    #: Next offset to consume per input (topic, partition), for the lag gauge.
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    newest_event_s: dict[str, float] = field(default_factory=dict)

    @property
    def input_topics(self) -> set[str]:
        return {self.settings.topic(logical) for logical in INPUT_TYPES}

    async def emit(self, emits: tuple[Emit, ...]) -> None:
        if not emits:
            return
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        for item in emits:
            value = item.value
            stamped = (
                replace(value, received_at=now)
                if isinstance(value, DeadLetter)
                else replace(value, emitted_at=now)
            )
            # Inside an agent Faust attaches these sends to the input record and publishes
            # them before it commits that record's offset: no output is lost behind a commit.
            await self.outputs[item.topic].send(key=item.key, value=encode(stamped))

    def observe(
        self, topic: str, partition: int, offset: int, timestamp_s: float | None, processed: Processed
    ) -> None:
        self.positions[(topic, partition)] = offset + 1
        m = self.metrics
        m.consumed.labels(topic).inc()
        m.last_consumed.labels(topic).set(time.time())
        if processed.event_time_us is not None:
            event_s = processed.event_time_us / 1e6
            if event_s > self.newest_event_s.get(topic, float("-inf")):  # a late record never moves it back
                self.newest_event_s[topic] = event_s
                m.last_event.labels(topic).set(event_s)
        outcome = processed.outcome
        if outcome.startswith("dead_letter:"):
            m.dead_letters.labels(topic, outcome.split(":", 1)[1]).inc()
            return
        if outcome == "unknown_reversal":
            m.unknown_reversals.inc()
        elif outcome == "ignored_withdrawal":
            m.ignored_withdrawals.inc()
        elif outcome == "duplicate":
            m.duplicates.labels(topic).inc()
        for item in processed.emits:
            value = item.value
            if isinstance(value, PaymentStop):
                m.stops.labels(value.reason, value.program).inc()
                if value.overpaid_amount is not None:
                    m.overpaid.labels(value.program).inc(float(value.overpaid_amount))
            elif isinstance(value, PaymentResume):
                m.resumes.labels(value.program).inc()
            else:
                m.warnings.labels(value.rule, getattr(value, "tier", "none")).inc()  # type: ignore[union-attr]
        if processed.emits and timestamp_s:
            m.latency.labels(topic).observe(max(0.0, time.time() - timestamp_s))


def _broker_options(settings: Settings) -> dict[str, object]:
    if not settings.local_broker_workarounds:
        return {}
    # The local tansu broker (see ../shared/BROKER.md): its ListOffsets answer is wrong
    # after multi-record batches, which silently truncates changelog recovery, so every
    # record goes in its own batch; and group joins are slow with default timeouts.
    return {
        "producer_max_batch_size": 1,
        "producer_linger_ms": 0,
        "broker_session_timeout": 10.0,
        "broker_rebalance_timeout": 10.0,
        "broker_heartbeat_interval": 1.0,
    }


def create_app(settings: Settings) -> tuple[faust.App, Runtime]:
    set_fetch_wait(100 if settings.local_broker_workarounds else None)
    app = faust.App(
        settings.app_id,
        broker=settings.broker,
        broker_credentials=faust_credentials(settings),
        store="rocksdb://",
        datadir=settings.data_dir,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        canonical_url=settings.web_url,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        table_standby_replicas=settings.standby_replicas,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        web_enabled=True,
        **_broker_options(settings),
    )

    def table(name: str) -> faust.Table:
        # bytes in and out: the state layer encodes (Faust picks "raw" for bytes types).
        return app.Table(name, default=None, key_type=bytes, value_type=bytes, partitions=settings.partitions)

    medical_table, status_table = table("person_medical"), table("person_status")
    medical_state = TableState(medical_table, MedicalState)
    status_state = TableState(status_table, StatusState)
    outputs = {
        logical: app.topic(settings.topic(logical), key_serializer="raw", value_serializer="raw")
        for logical in ("ASSISTANCE_WARNINGS", "PAYMENT_STOPS", "PAYMENT_RESUMES", "DEADLETTER")
    }
    runtime = Runtime(
        settings=settings,
        app=app,
        processor=Processor(settings, medical_state, status_state),
        medical_state=medical_state,
        status_state=status_state,
        outputs=outputs,
        tables={"person_medical": medical_table, "person_status": status_table},
    )

    from agents import medical, status  # agents sit on top of the app they register with
    from stream_app import observability, views

    medical.register(app, runtime)
    status.register(app, runtime)
    views.register(app, runtime, medical_table)
    observability.install(runtime)
    return app, runtime
