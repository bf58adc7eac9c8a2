"""The naive baseline of ``stream-app bench``: a plain Faust agent, one table read and write per event.

What a new Faust user writes first: one agent over the four input topics, each event
decoded with the worker's codec, the person's value read from a RocksDB table and
written back (so one changelog record per event). It runs with the same local-broker
settings as the worker (group timeouts, producer batches and fetch wait: README, "The
local broker and its workarounds"), so the bench compares processing paths, not broker
workarounds. ``GET /count/`` says how many events are done and the wall time of the last.

Run as ``python -m stream_app.bench_naive`` with the worker's ``STREAM_APP_*`` variables
(broker, topic names, app id, data dir, web port); ``stream-app bench`` does that.
"""

from __future__ import annotations

import time
from typing import Any

import faust
import msgspec

from stream_app import faust_patches
from stream_app.app import _broker_options
from stream_app.processing import INPUT_TYPES
from stream_app.records import Rejected, decode
from stream_app.settings import Settings, load


class Summary(msgspec.Struct):
    events: int = 0
    last_event_id: str = ""


def create_app(settings: Settings) -> faust.App:
    faust_patches.set_fetch_wait(100 if settings.local_broker_workarounds else None)
    app = faust.App(
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
        **_broker_options(settings),
    )
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

    @app.page("/count/")
    async def count(web: Any, request: Any) -> Any:
        return web.json(progress)

    return app


def main() -> None:
    app = create_app(load())
    worker = faust.Worker(app, loglevel="WARNING", redirect_stdouts=False)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
