"""Agent watching the status feeds (deaths, disability, enrollments): stops and resumes.

The three feeds share one agent and one per-person state, so every status rule
sees the death, the certification and the enrollments of a person together.
"""

from __future__ import annotations

import faust

from agents import consume
from stream_app.app import Runtime
from stream_app.processing import STATUS_TOPICS


def register(app: faust.App, runtime: Runtime) -> None:
    names = [runtime.settings.topic(logical) for logical in STATUS_TOPICS]
    topic = app.topic(*names, key_serializer="raw", value_serializer="raw")

    @app.agent(topic, name="status")
    async def status(stream: faust.StreamT) -> None:
        await consume(stream, runtime)
