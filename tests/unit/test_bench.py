"""The bench's pure parts: percentiles, rates, the summary's arithmetic, and the feed it sends.

No timing is asserted anywhere: performance is measured by ``stream-app bench``, not tested.
"""

from __future__ import annotations

from collections import Counter

import pytest

from stream_app.bench import QUICK, BenchError, metric_max, metric_sum, percentile, rate, summary
from stream_app.bench_feed import MIX, FeedMaker, latency_feed, pick, throughput_feed
from stream_app.processing import INPUT_TYPES, DictState, Processor
from stream_app.records import Rejected, decode
from stream_app.settings import load

TOPICS = load({}).topics


def test_percentile_interpolates_between_ranks():
    assert percentile([5.0], 50) == 5.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile(range(1, 101), 99) == pytest.approx(99.01)
    assert percentile([3, 1, 2], 0) == 1 and percentile([3, 1, 2], 100) == 3
    with pytest.raises(ValueError):
        percentile([], 50)


def test_rate_counts_from_the_first_observation():
    assert rate(1000, 100, 10.0, 19.0) == 100.0
    with pytest.raises(BenchError):
        rate(1000, 1000, 10.0, 11.0)  # everything was already done at the first look


def test_metric_helpers_sum_and_max_over_labels():
    text = (
        "# HELP benefit_integrity_records_consumed_total Input records consumed\n"
        'benefit_integrity_records_consumed_total{topic="a"} 3.0\n'
        'benefit_integrity_records_consumed_total{topic="b"} 4.0\n'
        'benefit_integrity_last_consumed_timestamp_seconds{topic="a"} 1.7e9\n'
        'benefit_integrity_last_consumed_timestamp_seconds{topic="b"} 1.8e9\n'
    )
    assert metric_sum(text, "benefit_integrity_records_consumed_total") == 7.0
    assert metric_max(text, "benefit_integrity_last_consumed_timestamp_seconds") == 1.8e9
    assert metric_sum(text, "benefit_integrity_nothing_total") is None


def test_summary_has_every_contract_field_and_consistent_ratios():
    result = summary(QUICK, 42.0, 1600.04, 90000.0, 1300.0, [10.0, 20.0, 400.0], 80.5, 225_000, 1000)
    assert set(result) >= {
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
    }
    ratio = result["events_per_s"] / result["raw_floor_events_per_s"]
    assert result["ratio"] == pytest.approx(ratio, rel=1e-3)
    assert result["speedup_vs_naive"] == pytest.approx(
        result["events_per_s"] / result["naive_faust_events_per_s"], rel=1e-3
    )
    assert result["offered_events_per_s"] == pytest.approx(result["events_per_s"] / 2, abs=0.01)
    assert result["p50_ms"] == 20.0 and result["p50_ms"] <= result["p99_ms"]
    assert result["state_bytes_per_person"] == 225.0


def test_pick_follows_the_shares():
    shares = [("a", 0.5), ("b", 0.3), ("c", 0.2)]
    assert [pick(r, shares) for r in (0.0, 0.49, 0.5, 0.79, 0.8, 0.999999)] == ["a", "a", "b", "b", "c", "c"]


def test_feed_is_seeded_and_has_the_mix():
    records = throughput_feed(FeedMaker(2000, seed=7, death_probes=50), 20_000)
    again = throughput_feed(FeedMaker(2000, seed=7, death_probes=50), 20_000)
    assert records == again
    assert len(records) == 20_000
    counts = Counter(r.logical for r in records)
    for logical, share in MIX:
        assert abs(counts[logical] / len(records) - share) < 0.02, (logical, counts)
    assert len({r.key for r in records}) > 1500  # most of the 2,000 persons appear


def test_feed_records_are_valid_input_and_some_cause_outputs():
    maker = FeedMaker(500, seed=3, death_probes=20)
    records = throughput_feed(maker, 5000)
    processor = Processor(load({}), DictState(), DictState())
    outputs: Counter[str] = Counter()
    for offset, r in enumerate(records):
        assert not isinstance(decode(INPUT_TYPES[r.logical], r.key, r.value, 65536), Rejected), r.value
        for emit in processor.with_households(
            processor.process(TOPICS[r.logical], 0, offset, r.key, r.value)
        ):
            value = emit.value
            label = getattr(value, "rule", None) or getattr(value, "reason", None)
            outputs[label or type(value).__name__] += 1
    assert outputs["MEDICAL_SELF_PAY"] > 0  # bills that cross the tiers
    assert outputs["DEATH"] > 0  # deaths of enrolled persons
    assert outputs["DeadLetter"] == 0


def test_each_probe_causes_exactly_one_output_naming_it():
    maker = FeedMaker(300, seed=5, death_probes=10)
    records = throughput_feed(maker, 3000) + latency_feed(maker, 1000, probe_every=20)
    processor = Processor(load({}), DictState(), DictState())
    caused: Counter[str] = Counter()
    for offset, r in enumerate(records):
        for emit in processor.with_households(
            processor.process(TOPICS[r.logical], 0, offset, r.key, r.value)
        ):
            caused[emit.value.caused_by] += 1
    probes = [r for r in records if r.probe]
    assert len(probes) == 50
    assert Counter(r.logical for r in probes)["DEATH_REGISTRATIONS"] == 10  # as many as were kept apart
    for r in probes:
        assert caused[r.probe] == 1, r.value
