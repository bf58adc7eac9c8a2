"""``stream-app worker`` with an injected defect, for tests only (never shipped: not in the package).

Records whose ``event_id`` is in ``TEST_FAULT_EVENT_IDS`` (comma-separated) raise in the
per-record path after the rules ran and their new state was staged: the worst moment for a
defect, as the staged state must then be thrown away. Run as
``python -m tests.integration.faulty_worker`` from the repository root.
"""

from __future__ import annotations

import os
from typing import Any

from stream_app import cli, processing

FAULTY = frozenset(filter(None, os.environ.get("TEST_FAULT_EVENT_IDS", "").split(",")))
_process = processing.Processor.process


def _faulty_process(self: processing.Processor, *args: Any, **kwargs: Any) -> processing.Processed:
    # Raise at the end of Processor.process, after the state writes were staged.
    processed = _process(self, *args, **kwargs)
    if processed.record is not None and processed.record.event_id in FAULTY:
        raise RuntimeError(f"injected fault for event {processed.record.event_id}")
    return processed


processing.Processor.process = _faulty_process  # type: ignore[method-assign]

if __name__ == "__main__":
    raise SystemExit(cli.main())
