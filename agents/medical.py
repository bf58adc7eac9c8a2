"""Agent watching medical settlements (rule R1): warnings when self-pay crosses a tier."""

from __future__ import annotations

import faust

from agents import consume
from stream_app.app import Runtime


def register(app: faust.App, runtime: Runtime) -> None:
    topic = app.topic(
        runtime.settings.topic("MEDICAL_SETTLEMENTS"), key_serializer="raw", value_serializer="raw"
    )

    @app.agent(topic, name="medical")
    async def medical(stream: faust.StreamT) -> None:
        await consume(stream, runtime)
