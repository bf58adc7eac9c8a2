"""Bad input at volume: never an exception, always a dead letter, nothing else changes.

Fuzzes the per-record path the worker runs (decode, state, rules) with wrong types,
huge and deep values, invalid UTF-8 and wrong keys, mixed among good records.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_app.processing import DictState, Processor
from stream_app.records import DeadLetter, encode
from stream_app.settings import load
from tests.builders import death_value, disability_value, enrollment_value, person, settlement_value

SETTINGS = load({"STREAM_APP_MAX_RECORD_BYTES": "4096"})
TOPIC = {logical: SETTINGS.topic(logical) for logical in SETTINGS.topics}
ERROR_CLASSES = {"encoding", "json", "schema", "key", "too_large"}
PEOPLE = [person(900 + n) for n in range(3)]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def good_records(draw) -> list[tuple[str, bytes, bytes]]:
    records = []
    for n in range(draw(st.integers(1, 12))):
        who = draw(st.sampled_from(PEOPLE))
        kind = draw(st.sampled_from(["settle", "settle", "enrol", "death", "disability"]))
        if kind == "settle":
            value = settlement_value(
                f"s{n}", who, f"2017-0{draw(st.integers(1, 9))}-01T09:00:00+08:00", "12000"
            )
            topic = "MEDICAL_SETTLEMENTS"
        elif kind == "enrol":
            value = enrollment_value(
                f"e{n}",
                who,
                draw(st.sampled_from(["dibao", "tekun", "disability_living"])),
                "active",
                "2016-01-01",
            )
            topic = "SUBSIDY_ENROLLMENTS"
        elif kind == "death":
            value, topic = death_value(f"d{n}", who, "2017-05-05"), "DEATH_REGISTRATIONS"
        else:
            value, topic = disability_value(f"c{n}", who, "revoked", "2017-03-03"), "DISABILITY_REGISTRATIONS"
        records.append((TOPIC[topic], who.encode(), json.dumps(value).encode()))
    return records


def bad_record(draw, good: list[tuple[str, bytes, bytes]]) -> tuple[str, bytes | None, bytes | None]:
    topic, key, raw = draw(st.sampled_from(good))
    value = json.loads(raw)
    how = draw(st.sampled_from(["bytes", "json", "drop", "replace", "huge", "deep", "utf8", "key", "nokey"]))
    if how == "bytes":
        return topic, key, draw(st.binary(max_size=200))
    if how == "json":
        return topic, key, json.dumps(draw(json_values)).encode()
    if how == "drop":
        value.pop(draw(st.sampled_from(sorted(value))))
    elif how == "replace":
        value[draw(st.sampled_from(sorted(value)))] = draw(json_values)
    elif how == "huge":
        value["event_id"] = "x" * draw(st.integers(129, 10_000))
    elif how == "deep":
        depth = draw(st.sampled_from([10, 999, 1000, 1500, 2000, 30_000]))  # msgspec recurses past ~1000
        nested = b"[" * depth + b"]" * depth
        return topic, key, draw(st.sampled_from([nested, b'{"event_id": "deep", "n": ' + nested + b"}"]))
    elif how == "utf8":
        return topic, key, raw[:-1] + b"\xff}"
    elif how == "key":
        return topic, draw(st.sampled_from([p.encode() for p in PEOPLE] + [b"\xff\xfe", b""])), raw
    else:
        return topic, None, raw
    return topic, key, json.dumps(value).encode()


def run(records):
    processor = Processor(SETTINGS, DictState(), DictState())
    outputs, letters = [], []
    for n, (topic, key, value) in enumerate(records):
        result = processor.process(topic, 0, n, key, value)  # must never raise
        for emit in result.emits:
            (letters if isinstance(emit.value, DeadLetter) else outputs).append(emit.value)
    return processor, outputs, letters


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_bad_records_become_dead_letters_and_change_nothing_else(data):
    good = good_records(data.draw)
    bad = [bad_record(data.draw, good) for _ in range(data.draw(st.integers(1, 6)))]
    mixed = list(good)
    for record in bad:
        mixed.insert(data.draw(st.integers(0, len(mixed))), record)

    clean_processor, clean_outputs, _ = run(good)
    processor, outputs, letters = run(mixed)
    # A "bad" mutation can happen to still be a valid record (a replaced field that
    # was optional, the same key): those count as good, so compare with what the
    # records that were not dead-lettered give on their own.
    kept = [r for n, r in enumerate(mixed) if not _dead(processor, mixed, n)]
    _, kept_outputs, _ = run(kept)
    assert outputs == kept_outputs
    for letter in letters:
        assert letter.error_class in ERROR_CLASSES and letter.error
        json.loads(encode(letter))  # a dead letter always encodes
    if len(letters) == len(bad):  # every mutation was bad: exactly the clean run's outputs
        assert outputs == clean_outputs
        assert processor.medical_state.data == clean_processor.medical_state.data
        assert processor.status_state.data == clean_processor.status_state.data


def _dead(processor, records, n) -> bool:
    topic, key, value = records[n]
    probe = Processor(SETTINGS, DictState(), DictState())
    return any(isinstance(e.value, DeadLetter) for e in probe.process(topic, 0, n, key, value).emits)
