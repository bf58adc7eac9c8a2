"""The agent over the four person-keyed feeds: settlements, deaths, disability, enrollments.

One agent, so one person's records are handled one at a time, in a fixed order,
whatever their topic: every rule sees the whole person (R4 joins bills and
deaths; R8 reads enrollments), and the state written is always that of the
records whose outputs were delivered.
"""

from __future__ import annotations

import faust

from stream_app.faust_patches import EventScope, RawSchema, take_buffered
from stream_app.processing import INPUT_TYPES, Emit, Processed
from stream_app.runtime import Runtime


def register(app: faust.App, runtime: Runtime) -> None:
    names = [runtime.settings.topic(logical) for logical in INPUT_TYPES]
    topic = app.topic(*names, schema=RawSchema())

    @app.agent(topic, name="persons")
    async def persons(stream: faust.StreamT) -> None:
        await consume(runtime, stream)


async def consume(runtime: Runtime, stream: faust.StreamT) -> None:
    """The agent loop, shared by the person and the household agents (agents/households.py).

    The order below is what makes a kill at any instant safe: a batch's outputs are
    acknowledged by the broker before its state is written, and its records are
    acknowledged to Faust (so their offsets may be committed, after the changelog is
    flushed) only after that. A replay then either finds the old state and sends the same
    outputs again (same ids, same content) or finds the new state, whose outputs were
    delivered. Acks are manual: Faust acks an event whose processing was cancelled or
    raised (the iterator's ``finally``), and a shutdown would then commit a record whose
    outputs and state never happened.

    A batch is the event the stream gives plus those already waiting behind it (at most
    ``STREAM_APP_MAX_BATCH_RECORDS``): idle, a batch is one record and nothing waits to
    fill it; behind a backlog, the broker round trip and each key's state write are paid
    once per batch. Reads of later records see the staged writes of earlier ones.
    """
    limit = runtime.settings.max_batch_records
    manual = stream.noack()
    async for first in manual.events():
        batch = [first] if limit == 1 else [first, *take_buffered(manual, limit - 1)]
        done: list[Processed] = []
        emits: list[Emit] = []
        for event in batch:
            # Each record is processed in its partition: the table reads, and the writes
            # the flush makes for it, take it from there.
            EventScope.current(event)
            msg = event.message
            processed = runtime.process(msg.topic, msg.partition, msg.offset, msg.key, msg.value)
            done.append(processed)
            emits.extend(processed.emits)
        EventScope.clear()
        await runtime.deliver(emits)
        await runtime.save_state(first.message.topic)  # the states of this agent only
        for event, processed in zip(batch, done, strict=True):
            msg = event.message
            runtime.observe(msg.topic, msg.partition, msg.offset, msg.timestamp, processed)
        runtime.observe_batch(len(batch))
        for event in batch:
            await manual.ack(event)
