"""Choosing dead letters to replay and restoring their records, without a broker."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from stream_app.processing import dead_letter, internal_dead_letter
from stream_app.records import Rejected, encode
from stream_app.replay import Selection, parse_time, plan, resolve_topics, restore
from stream_app.settings import load

SETTINGS = load({})
MEDICAL = SETTINGS.topic("MEDICAL_SETTLEMENTS")
DEATHS = SETTINGS.topic("DEATH_REGISTRATIONS")


def letter(emit, received_at: str = "2026-12-04T08:00:00.000+00:00") -> dict:
    """A dead letter as a consumer of deadletter.v1 reads it."""
    value = json.loads(encode(emit.value))
    value["received_at"] = received_at
    return value


def internal(topic=MEDICAL, offset=0, key=b"k", value=b'{"event_id": "e1"}', **kw):
    return letter(internal_dead_letter(KeyError("boom"), topic, 1, offset, key, value, 100), **kw)


def test_internal_dead_letter_gives_back_its_record_byte_for_byte():
    raw = '{"event_id": "e1", "note": "林小花 \\u00e9"}'.encode()
    replay = restore(internal(key=b"330183195001010011", value=raw))
    assert (replay.topic, replay.partition, replay.offset) == (MEDICAL, 1, 0)
    assert (replay.key, replay.value) == (b"330183195001010011", raw)


def test_base64_key_and_value_and_a_missing_value_are_restored_exactly():
    rejected = Rejected("encoding", "the value is not UTF-8")
    replay = restore(letter(dead_letter(rejected, MEDICAL, 0, 5, b"\xff\xfe", b"\xff{bad", 100)))
    assert (replay.key, replay.value) == (b"\xff\xfe", b"\xff{bad")
    tombstone = restore(letter(dead_letter(Rejected("json", "no value"), MEDICAL, 0, 6, None, None, 100)))
    assert (tombstone.key, tombstone.value) == (None, None)


def test_a_truncated_value_is_refused_with_a_reason():
    big = letter(dead_letter(Rejected("too_large", "over the limit"), MEDICAL, 0, 7, b"k", b"x" * 200, 100))
    replays, refused = plan([big], Selection(classes=frozenset({"too_large"})))
    assert replays == []
    [reason] = refused
    assert f"{MEDICAL}[0]@7" in reason and "cut to the size limit" in reason


def test_default_selection_is_internal_only():
    bad = letter(dead_letter(Rejected("schema", "`self_pay` is negative"), MEDICAL, 0, 3, b"k", b"{}", 100))
    replays, refused = plan([bad, internal(offset=4)], Selection())
    assert [r.offset for r in replays] == [4] and refused == []


def test_topic_filter_takes_logical_or_real_names():
    letters = [internal(MEDICAL, 1), internal(DEATHS, 2)]
    for names in (["MEDICAL_SETTLEMENTS"], [MEDICAL]):
        replays, _ = plan(letters, Selection(topics=resolve_topics(names, SETTINGS)))
        assert [r.topic for r in replays] == [MEDICAL]
    assert resolve_topics([], SETTINGS) is None


def test_time_filter_is_since_inclusive_until_exclusive_across_offsets():
    letters = [
        internal(offset=1, received_at="2026-12-04T07:59:59.999+00:00"),
        internal(offset=2, received_at="2026-12-04T16:00:00+08:00"),  # 08:00Z
        internal(offset=3, received_at="2026-12-04T09:00:00Z"),
    ]
    selection = Selection(since=parse_time("2026-12-04T08:00:00Z"), until=parse_time("2026-12-04T09:00:00Z"))
    assert [r.offset for r in plan(letters, selection)[0]] == [2]


def test_duplicate_dead_letters_replay_once_in_original_order():
    letters = [internal(offset=9), internal(offset=2), internal(offset=9), internal(DEATHS, 1)]
    replays, _ = plan(letters, Selection())
    assert [(r.topic, r.offset) for r in replays] == [(DEATHS, 1), (MEDICAL, 2), (MEDICAL, 9)]


def test_times_without_offset_are_refused():
    assert parse_time("2026-12-04T08:00:00+08:00") == datetime(2026, 12, 4, 0, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="no offset"):
        parse_time("2026-12-04T08:00:00")
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_time("yesterday")
