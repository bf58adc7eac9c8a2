"""Build the Faust app: topics, tables, agents, web views. Nothing runs at import."""

from __future__ import annotations

import faust

from agents import households, persons
from stream_app import faust_patches, observability, views
from stream_app.processing import Processor
from stream_app.rules.household import HouseholdState
from stream_app.rules.medical import MedicalState
from stream_app.rules.status import StatusState
from stream_app.runtime import Runtime
from stream_app.security import faust_credentials
from stream_app.settings import Settings
from stream_app.state import StagedState, TableState
from stream_app.topology import (
    HOUSEHOLD_MEDICAL,
    INTERNAL_TOPICS,
    OUTPUT_TOPICS,
    PERSON_MEDICAL,
    PERSON_STATUS,
)


def _broker_options(settings: Settings) -> dict[str, object]:
    if not settings.local_broker_workarounds:
        return {}
    # The local tansu broker (see ../shared/BROKER.md): group joins are slow with default
    # timeouts. (Its wrong ListOffsets answer is worked around in recovery itself:
    # faust_patches.set_highwaters_from_fetch.)
    return {
        "broker_session_timeout": 10.0,
        "broker_rebalance_timeout": 10.0,
        "broker_heartbeat_interval": 1.0,
    }


def create_app(settings: Settings) -> tuple[faust.App, Runtime]:
    if settings.faust_patches:
        faust_patches.install()
    else:
        faust_patches.uninstall()
    faust_patches.set_fetch_wait(100 if settings.local_broker_workarounds else None)
    faust_patches.set_highwaters_from_fetch(settings.local_broker_workarounds)
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

    medical_table, status_table = table(PERSON_MEDICAL.name), table(PERSON_STATUS.name)
    household_table = table(HOUSEHOLD_MEDICAL.name)
    # Staged writes are flushed after their batch, each in the scope of the event that
    # wrote it: Faust takes the table partition (RocksDB and changelog) from that event.
    # Their changelog records are handed to the producer per batch (``BatchTable``).
    scope = faust_patches.EventScope()
    medical_batch, status_batch, household_batch = (
        faust_patches.BatchTable(medical_table),
        faust_patches.BatchTable(status_table),
        faust_patches.BatchTable(household_table),
    )
    medical_state = StagedState(TableState(medical_batch, MedicalState), scope)  # type: ignore[arg-type]
    status_state = StagedState(TableState(status_batch, StatusState), scope)  # type: ignore[arg-type]
    household_state = StagedState(TableState(household_batch, HouseholdState), scope)  # type: ignore[arg-type]
    runtime = Runtime(
        settings=settings,
        processor=Processor(settings, medical_state, status_state, household_state),
        medical_state=medical_state,
        status_state=status_state,
        # Outputs are sent by the agent itself and awaited (``Runtime.deliver``); Faust's
        # ``stream_publish_on_commit`` (attaching sends to the input offset) stays off.
        outputs={
            logical: app.topic(settings.topic(logical), key_serializer="raw", value_serializer="raw")
            for logical in (*OUTPUT_TOPICS, *INTERNAL_TOPICS)
        },
        tables={
            PERSON_MEDICAL.name: medical_table,
            PERSON_STATUS.name: status_table,
            HOUSEHOLD_MEDICAL.name: household_table,
        },
        changelogs=[medical_batch, status_batch],
        household_state=household_state,
        household_changelogs=[household_batch],
        send=faust_patches.send_all,
    )

    persons.register(app, runtime)
    households.register(app, runtime)
    views.register(app, runtime, medical_table, household_table)
    observability.install(app, runtime)
    return app, runtime
