"""``stream-app bench --quick`` end to end, as CI runs it: its own broker, the real worker.

Every contract field must be present and sane; no figure is compared with a target
(performance is measured by the bench, never asserted in tests).
"""

from __future__ import annotations

import json
import math

import pytest

from tests.integration.conftest import free_port
from tests.integration.test_cli import stream_app

pytestmark = pytest.mark.integration

FIELDS = (
    "events",
    "persons",
    "seconds",
    "events_per_s",
    "raw_floor_events_per_s",
    "ratio",
    "naive_faust_events_per_s",
    "speedup_vs_naive",
    "offered_events_per_s",
    "p50_ms",
    "p99_ms",
    "peak_rss_mb",
    "state_bytes_per_person",
)


def test_bench_quick_prints_every_contract_field():
    result = stream_app("bench", "--quick", timeout=300)  # no STREAM_APP_BROKER: it starts its own
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    report = json.loads(lines[-1])  # the JSON object is the last stdout line
    for name in FIELDS:
        value = report[name]
        assert isinstance(value, int | float) and math.isfinite(value) and value > 0, (name, value)
    assert report["events"] == 5000 and report["persons"] == 1000
    ratio = report["events_per_s"] / report["raw_floor_events_per_s"]
    assert report["ratio"] == pytest.approx(ratio, rel=1e-3)
    assert report["speedup_vs_naive"] == pytest.approx(
        report["events_per_s"] / report["naive_faust_events_per_s"], rel=1e-3
    )
    assert report["offered_events_per_s"] == pytest.approx(report["events_per_s"] / 2, abs=0.01)
    assert report["p50_ms"] <= report["p99_ms"]
    assert "raw floor" in result.stderr and "naive" in result.stderr  # progress goes to stderr


def test_bench_exits_1_with_one_line_when_the_named_broker_does_not_answer():
    nowhere = f"kafka://127.0.0.1:{free_port()}"  # nothing listens there
    result = stream_app("bench", "--quick", env={"STREAM_APP_BROKER": nowhere}, timeout=60)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "not reachable" in result.stderr and result.stderr.strip().count("\n") == 0
