"""Pure rules: ``step(state | None, record, ...) -> Step``.

No Faust, no Kafka, no clock: the worker and ``stream-app backtest`` run the
same functions, so they give the same outputs and ids.
"""

from stream_app.rules.common import Step, output_id

__all__ = ["Step", "output_id"]
