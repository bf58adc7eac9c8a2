"""The agent over the internal household topic (R7): members' settlements re-keyed by household.

A household's members hash to any partition of the person-keyed inputs, so the person agent
forwards each settlement or reversal that names a household to this topic, keyed by
``household_id``; here one household's records are handled one at a time, in that topic's
partition order, by the same loop (and so the same order of outputs, state and ack) as the
person agent. Its state is the household table only, flushed by this agent alone.
"""

from __future__ import annotations

import faust

from agents.persons import consume
from stream_app.faust_patches import RawSchema
from stream_app.processing import HOUSEHOLD_TOPIC
from stream_app.runtime import Runtime


def register(app: faust.App, runtime: Runtime) -> None:
    topic = app.topic(runtime.settings.topic(HOUSEHOLD_TOPIC), schema=RawSchema())

    @app.agent(topic, name="households")
    async def households(stream: faust.StreamT) -> None:
        await consume(runtime, stream)
