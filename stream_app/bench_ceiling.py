"""What Faust itself costs per record: an agent over the four input topics that does nothing.

``scripts/faust-ceiling`` runs it beside the bench's feed to bound what any worker built on
Faust can reach on a machine (the "Faust limit" of issue 17): no decoding, no state, no
outputs, only Faust's consumer, conductor, stream and acknowledgements. Two modes (the
one argument):

- ``per-event``: Faust's own iterator, one event at a time, acknowledged by Faust, as
  released (none of ``stream_app.faust_patches``): a new Faust user's agent loop;
- ``batched``: the worker's hand-off (the patches installed, ``take_buffered`` batches of up
  to 500 events, manual acks, the partition set per record), as ``agents/persons.py`` runs it.

``GET /count/`` says how many events are done and the wall time of the last. Run as
``python -m stream_app.bench_ceiling MODE`` with the worker's ``STREAM_APP_*`` variables.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import faust

from stream_app import faust_patches
from stream_app.bench_naive import LOCAL_BROKER_OPTIONS, plain_app, run, serve_progress
from stream_app.processing import INPUT_TYPES
from stream_app.settings import Settings, load

MODES = ("per-event", "batched")


def create_app(settings: Settings, mode: str) -> faust.App:
    if mode not in MODES:
        raise SystemExit(f"the mode must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "batched":
        faust_patches.install()
    else:
        faust_patches.uninstall()
    # The naive agent's app without its one-record producer batches (nothing is produced here).
    local = settings.local_broker_workarounds
    options = {k: v for k, v in LOCAL_BROKER_OPTIONS.items() if k.startswith("broker_")} if local else {}
    app = plain_app(settings, **options)
    names = [settings.topic(logical) for logical in INPUT_TYPES]
    if mode == "batched":
        topic = app.topic(*names, schema=faust_patches.RawSchema())
    else:
        topic = app.topic(*names, key_serializer="raw", value_serializer="raw")
    progress: dict[str, Any] = {"consumed": 0, "last_at": None}

    @app.agent(topic, name="ceiling")
    async def ceiling(stream: faust.StreamT) -> None:
        if mode == "per-event":
            async for _ in stream.events():
                progress["consumed"] += 1
                progress["last_at"] = time.time()
            return
        manual = stream.noack()
        async for first in manual.events():
            batch = [first, *faust_patches.take_buffered(manual, settings.max_batch_records - 1)]
            for event in batch:
                faust_patches.EventScope.current(event)
            faust_patches.EventScope.clear()
            for event in batch:
                await manual.ack(event)
            progress["consumed"] += len(batch)
            progress["last_at"] = time.time()

    serve_progress(app, progress)
    return app


def main() -> None:
    mode = sys.argv.pop(1) if len(sys.argv) > 1 else "batched"  # Faust's worker reads argv too
    run(create_app(load(), mode))


if __name__ == "__main__":
    main()
