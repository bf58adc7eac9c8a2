"""The agent over the four person-keyed feeds: settlements, deaths, disability, enrollments.

One agent, so one person's records are handled one at a time, in a fixed order,
whatever their topic: every rule sees the whole person (R4 joins bills and
deaths; R8 reads enrollments), and the state written is always that of the
records whose outputs were delivered.
"""

from __future__ import annotations

import faust

from stream_app.processing import INPUT_TYPES
from stream_app.runtime import Runtime


def register(app: faust.App, runtime: Runtime) -> None:
    names = [runtime.settings.topic(logical) for logical in INPUT_TYPES]
    topic = app.topic(*names, key_serializer="raw", value_serializer="raw")

    @app.agent(topic, name="persons")
    async def persons(stream: faust.StreamT) -> None:
        await consume(runtime, stream)


async def consume(runtime: Runtime, stream: faust.StreamT) -> None:
    """The agent loop, shared by the person and the household agents (agents/households.py)."""
    # The order below is what makes a kill at any instant safe: the record's outputs
    # are acknowledged by the broker before its state is written, and the record is
    # acknowledged to Faust (so its offset may be committed, after the changelog is
    # flushed) only after that. A replay then either finds the old state and sends
    # the same outputs again (same ids, same content) or finds the new state, whose
    # outputs were delivered. Acks are manual: Faust acks an event whose processing
    # was cancelled or raised (the iterator's ``finally``), and a shutdown would then
    # commit a record whose outputs and state never happened.
    manual = stream.noack()
    async for event in manual.events():
        msg = event.message
        processed = runtime.process(msg.topic, msg.partition, msg.offset, msg.key, msg.value)
        await runtime.deliver(processed.emits)
        runtime.save_state(msg.topic)  # the states of this agent only
        runtime.observe(msg.topic, msg.partition, msg.offset, msg.timestamp, processed)
        await manual.ack(event)
