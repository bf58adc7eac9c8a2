"""The naive baseline of ``stream-app bench``: a plain Faust agent, one table read and write per event.

What a new Faust user writes first: one agent over the four input topics, each event
decoded with the worker's codec, the person's value read from a RocksDB table and
written back (so one changelog record per event). ``GET /count/`` says how many events
are done and the wall time of the last.

On the local broker it runs with the workarounds ``../shared/BROKER.md`` says a Faust app
needs there (one record per producer batch, so its changelog could be recovered; short
group timeouts; a 100 ms fetch wait), as the worker did when the bench was written. They
are fixed here, not imported from the worker's app, so a change of the worker never moves
the baseline it is compared with. Against another broker: Faust's defaults.

Run as ``python -m stream_app.bench_naive`` with the worker's ``STREAM_APP_*`` variables
(broker, topic names, app id, data dir, web port); ``stream-app bench`` does that.
"""

from __future__ import annotations

import time
from typing import Any

import faust
import msgspec

from stream_app import faust_patches
from stream_app.processing import INPUT_TYPES
from stream_app.records import Rejected, decode
from stream_app.settings import Settings, load

#: BROKER.md's workarounds for a Faust app on the local tansu broker (see the docstring).
LOCAL_BROKER_OPTIONS: dict[str, Any] = {
    "producer_max_batch_size": 1,
    "producer_linger_ms": 0,
    "broker_session_timeout": 10.0,
    "broker_rebalance_timeout": 10.0,
    "broker_heartbeat_interval": 1.0,
}


class Summary(msgspec.Struct):
    events: int = 0
    last_event_id: str = ""


def plain_app(settings: Settings, **options: Any) -> faust.App:
    """A Faust app as a new user configures one (raw keys and values, RocksDB tables, the
    earliest offset for a new group), with the local broker's 100 ms fetch wait there."""
    faust_patches.set_fetch_wait(100 if settings.local_broker_workarounds else None)
    return faust.App(
        settings.app_id,
        broker=settings.broker,
        store="rocksdb://",
        datadir=settings.data_dir,
        web_port=settings.web_port,
        web_bind="127.0.0.1",
        topic_partitions=settings.partitions,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        **options,
    )


def create_app(settings: Settings) -> faust.App:
    app = plain_app(settings, **(LOCAL_BROKER_OPTIONS if settings.local_broker_workarounds else {}))
    table = app.Table(
        "person_summary", default=None, key_type=bytes, value_type=bytes, partitions=settings.partitions
    )
    types = {settings.topic(logical): record_type for logical, record_type in INPUT_TYPES.items()}
    topic = app.topic(*types, key_serializer="raw", value_serializer="raw")
    limit = settings.max_record_bytes
    encoder, decoder = msgspec.msgpack.Encoder(), msgspec.msgpack.Decoder(Summary)
    progress: dict[str, Any] = {"consumed": 0, "last_at": None}

    @app.agent(topic, name="naive")
    async def naive(stream: faust.StreamT) -> None:
        async for event in stream.events():
            msg = event.message
            record = decode(types[msg.topic], msg.key, msg.value, limit)
            if not isinstance(record, Rejected):
                raw = table.get(msg.key)  # one read
                summary = Summary() if raw is None else decoder.decode(raw)
                summary.events += 1
                summary.last_event_id = record.event_id
                table[msg.key] = encoder.encode(summary)  # one write (one changelog record)
            progress["consumed"] += 1
            progress["last_at"] = time.time()

    serve_progress(app, progress)
    return app


def serve_progress(app: faust.App, progress: dict[str, Any]) -> None:
    """``GET /count/``: events done and the wall time of the last (what the bench polls)."""

    @app.page("/count/")
    async def count(web: Any, request: Any) -> Any:
        return web.json(progress)


def run(app: faust.App) -> None:
    """Run ``app`` as a Faust worker in this process until it is stopped."""
    faust.Worker(app, loglevel="WARNING", redirect_stdouts=False).execute_from_commandline()


def main() -> None:
    run(create_app(load()))


if __name__ == "__main__":
    main()
