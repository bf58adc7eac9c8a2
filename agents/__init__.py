"""Faust agents, one module per watched feed; each exposes ``register(app, runtime)``."""

from __future__ import annotations

import logging

from faust import StreamT

from stream_app.app import Runtime
from stream_app.processing import Processed

log = logging.getLogger("stream_app.agents")


async def consume(stream: StreamT, runtime: Runtime) -> None:
    """The thin agent loop: hand each raw record to the processor, emit what it returns.

    Bad input never raises here (it comes back as a dead letter); an unexpected error
    is logged with the record's position and skipped, so a partition never blocks.
    """
    processor, metrics = runtime.processor, runtime.metrics
    async for event in stream.events():
        msg = event.message
        try:
            processed = processor.process(msg.topic, msg.partition, msg.offset, msg.key, msg.value)
        except Exception:
            metrics.internal_errors.labels(msg.topic).inc()
            log.exception("internal error on %s[%d]@%d; record skipped", msg.topic, msg.partition, msg.offset)
            runtime.observe(msg.topic, msg.partition, msg.offset, None, Processed((), "internal_error"))
            continue
        if processed.outcome.startswith("dead_letter:"):
            log.info(
                "dead letter %s[%d]@%d: %s",
                msg.topic,
                msg.partition,
                msg.offset,
                processed.outcome.split(":", 1)[1],
            )
        elif processed.emits and log.isEnabledFor(logging.DEBUG):
            for item in processed.emits:
                log.debug(
                    "emitted %s to %s caused by %s[%d]@%d event_id=%s",
                    type(item.value).__name__,
                    item.topic,
                    msg.topic,
                    msg.partition,
                    msg.offset,
                    processed.event_id,
                )
        await runtime.emit(processed.emits)
        runtime.observe(msg.topic, msg.partition, msg.offset, msg.timestamp, processed)
