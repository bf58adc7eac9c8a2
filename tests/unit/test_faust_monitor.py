"""The lean Faust monitor exports what Faust's own Prometheus monitor exports, call for call."""

from __future__ import annotations

from typing import Any

from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP

from stream_app.metrics import PREFIX, Metrics
from stream_app.observability import LeanPrometheusMonitor, faust_metrics


class _Task:
    pass


class _Stream:
    def __init__(self, name: str) -> None:
        self.shortlabel = f"Stream: {name}"
        self.task_owner = _Task()


class _Table:
    def __init__(self, name: str) -> None:
        self.name = name


class _App:
    rebalancing_count = 1


class _Message:
    time_in: float | None = None


def _drive(monitor: Any, rounds: int) -> None:
    """What a worker's records do to the monitor, a rebalance between two rounds of them."""
    streams = [_Stream("persons"), _Stream("households")]
    tables = [_Table("person_medical"), _Table("household_medical")]
    for round_ in range(rounds):
        for offset in range(5):
            for partition in range(3):
                tp = TP(f"topic-{partition % 2}", partition)
                message = _Message()
                monitor.on_message_in(tp, offset + round_ * 10, message)
                stream = streams[partition % 2]
                state = monitor.on_stream_event_in(tp, offset, stream, object())
                table = tables[offset % 2]
                monitor.on_table_get(table, b"key")
                monitor.on_table_set(table, b"key", b"value")
                if offset == 3:
                    monitor.on_table_del(table, b"key")
                monitor.on_send_initiated(None, f"out-{offset % 2}", None, 3, 10)
                monitor.on_stream_event_out(tp, offset, stream, object(), state)
                monitor.on_message_out(tp, offset, message)
        monitor.on_tp_commit({TP("topic-0", 0): 4 + round_})
        monitor.track_tp_end_offset(TP("topic-1", 1), 9 + round_)
        # A rebalance drops the per-topic and per-partition series (Faust's own clear).
        app = _App()
        monitor.on_rebalance_end(app, monitor.on_rebalance_start(app))


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every counter and gauge sample of Faust's series (latencies aside: they are timings)."""
    found = {}
    for family in metrics.registry.collect():
        if not family.name.startswith(f"{PREFIX}_faust") or family.type == "histogram":
            continue
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_lean_monitor_exports_the_same_series_and_values_as_faust_s() -> None:
    plain_metrics, lean_metrics = Metrics(), Metrics()
    plain = PrometheusMonitor(metrics=FaustMetrics.create(plain_metrics.registry, f"{PREFIX}_faust"))
    lean = LeanPrometheusMonitor(metrics=faust_metrics(lean_metrics))
    for monitor in (plain, lean):
        _drive(monitor, rounds=3)
        # After the last rebalance, records again: the series removed come back and count.
        monitor.on_message_in(TP("topic-0", 0), 40, _Message())
        monitor.on_send_initiated(None, "out-0", None, 3, 10)

    expected = _samples(plain_metrics)
    assert any("messages_received_per_topic" in name for name, _ in expected)
    assert any("table_operations" in name for name, _ in expected)
    assert _samples(lean_metrics) == expected


def test_table_operations_counted_per_batch_as_faust_counts_them_one_by_one() -> None:
    plain_metrics, lean_metrics = Metrics(), Metrics()
    plain = PrometheusMonitor(metrics=FaustMetrics.create(plain_metrics.registry, f"{PREFIX}_faust"))
    lean = LeanPrometheusMonitor(metrics=faust_metrics(lean_metrics))
    medical, households = _Table("person_medical"), _Table("household_medical")
    batches = ((medical, (7, 5, 1)), (households, (3, 0, 2)), (medical, (2, 2, 0)))
    for table, (retrieved, updated, deleted) in batches:
        for _ in range(retrieved):
            plain.on_table_get(table, b"k")
        for _ in range(updated):
            plain.on_table_set(table, b"k", b"v")
        for _ in range(deleted):
            plain.on_table_del(table, b"k")
        lean.on_table_operations(table, retrieved, updated, deleted)

    expected = _samples(plain_metrics)
    reads = (("operation", "keys_retrieved"), ("table", "table.person_medical"))
    assert expected[(f"{PREFIX}_faust_table_operations_total", reads)] == 9
    assert _samples(lean_metrics) == expected
    assert {name: (s.keys_retrieved, s.keys_updated, s.keys_deleted) for name, s in lean.tables.items()} == {
        name: (s.keys_retrieved, s.keys_updated, s.keys_deleted) for name, s in plain.tables.items()
    }
