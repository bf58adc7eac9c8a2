"""Outputs: everything the processor emits, over the demo's stories and a hand-made feed
of every other output kind, validates against its topic's JSON Schema; the schemas
reject what the contract rules out."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest

from stream_app.demo_feed import stories
from stream_app.processing import DictState, Emit, Processor
from stream_app.records import DeadLetter, SelfPayWarning, encode, with_check_character
from stream_app.settings import load
from tests.builders import DROP, REGION, changed
from tests.builders import SAMPLE_PERSON as P
from tests.builders import sample_certification as certification
from tests.builders import sample_death as death
from tests.builders import sample_enrollment as enrollment
from tests.builders import sample_settlement as settlement
from tests.contract_schemas import DEATH, DISABILITY, ENROLLMENT, MEDICAL, as_bytes, schema_errors

P2 = with_check_character("33018319720811004")


def _hand_made_feed() -> list[tuple[str, bytes | None, bytes | None]]:
    """(topic, key, value) for every output kind the stories do not produce."""
    a, b, c, d = (with_check_character(f"3301831990010100{n}") for n in (1, 2, 3, 4))
    feed: list[tuple[str, dict[str, Any] | bytes | None, str | bytes | None]] = [
        # DUPLICATE_ASSISTANCE: dibao and tekun at once
        (ENROLLMENT, enrollment(event_id="dup-1", person_id=a), a),
        (
            ENROLLMENT,
            enrollment(event_id="dup-2", person_id=a, program="tekun", effective_on="2017-09-01"),
            a,
        ),
        # DECEASED_ENROLLMENT: an enrollment after the death
        (DEATH, death(event_id="late-d", person_id=b, died_on="2017-09-10"), b),
        (ENROLLMENT, enrollment(event_id="late-e", person_id=b, effective_on="2017-10-01"), b),
        # DISABILITY_LEVEL_INELIGIBLE: nursing at level 3
        (ENROLLMENT, enrollment(event_id="n-1", person_id=c, program="disability_nursing"), c),
        (DISABILITY, certification(event_id="lvl-3", person_id=c, level=3, effective_on="2017-12-05"), c),
        # dead letters of every class
        (MEDICAL, b'{"event_id": "bad-enc", "note": "\xff\xfe"}', d),
        (MEDICAL, b"[1, 2]", d),
        (MEDICAL, None, d),
        (MEDICAL, settlement(event_id="bad-schema", person_id=d, self_pay="1.005"), d),
        (MEDICAL, settlement(event_id="bad-key", person_id=d), P2),
        (MEDICAL, settlement(event_id="no-key", person_id=d), None),
        (MEDICAL, settlement(event_id="bin-key", person_id=d), b"\xff\x00"),
        (MEDICAL, settlement(event_id="big", person_id=d, note="结" * 30000), d),
    ]
    out = []
    for topic, value, key in feed:
        raw_key = key if isinstance(key, bytes) or key is None else key.encode()
        out.append((topic, raw_key, None if value is None else as_bytes(value)))
    return out


def _story_feed() -> list[tuple[str, bytes | None, bytes | None]]:
    topics = load({}).topics
    out: list[tuple[str, bytes | None, bytes | None]] = []
    for _, story in stories():
        fallback = next((v["person_id"] for _, v in story if isinstance(v, dict)), "")
        for logical, value in story:
            key = value["person_id"] if isinstance(value, dict) else fallback
            out.append((topics[logical], key.encode(), as_bytes(value)))
    return out


def _stamped(item: Emit) -> bytes:
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    value = item.value
    if isinstance(value, DeadLetter):
        return encode(msgspec.structs.replace(value, received_at=now))
    return encode(msgspec.structs.replace(value, emitted_at=now))


@pytest.fixture(scope="module")
def emitted() -> list[tuple[str, bytes]]:
    """(output topic, encoded value) of every output over the stories and the hand-made feed."""
    settings = load({})
    processor = Processor(settings, DictState(), DictState())
    out = []
    for offset, (topic, key, value) in enumerate(_story_feed() + _hand_made_feed()):
        for item in processor.with_households(processor.process(topic, 0, offset, key, value)):
            out.append((settings.topics[item.topic], _stamped(item)))
    return out


def _kind(topic: str, value: dict[str, Any]) -> tuple[str, str | None]:
    label = value.get("rule") or value.get("reason") or value.get("error_class")
    return topic, label


def test_processor_emits_every_implemented_output_kind(emitted):
    kinds = {_kind(topic, json.loads(raw)) for topic, raw in emitted}
    expected = {
        ("assistance.warnings.v1", "MEDICAL_SELF_PAY"),
        ("assistance.warnings.v1", "DISABILITY_NURSING_ELIGIBLE"),
        ("assistance.warnings.v1", "DUPLICATE_ASSISTANCE"),
        ("assistance.warnings.v1", "POST_DEATH_ACTIVITY"),
        *(("payment.stops.v1", r) for r in ("DEATH", "DECEASED_ENROLLMENT", "DISABILITY_REVOKED")),
        ("payment.stops.v1", "DISABILITY_LEVEL_INELIGIBLE"),
        ("payment.resumes.v1", "DEATH_WITHDRAWN"),
        *(("deadletter.v1", c) for c in ("encoding", "json", "schema", "key", "too_large")),
    }
    assert expected <= kinds, expected - kinds
    letters = [json.loads(raw) for topic, raw in emitted if topic == "deadletter.v1"]
    assert any(d.get("key_encoding") == "base64" for d in letters)
    assert any(d["key"] is None for d in letters) and any(d["value"] is None for d in letters)
    assert any(d.get("value_truncated") for d in letters)


def test_every_emitted_output_validates_against_its_topic_schema(emitted):
    failures = []
    for topic, raw in emitted:
        errors = schema_errors(topic, raw)
        if errors:
            failures.append((topic, raw.decode(), [e.message for e in errors]))
    assert not failures, failures


def test_emitted_output_has_no_framework_metadata(emitted):
    for topic, raw in emitted:
        value = json.loads(raw)
        assert not any(name.startswith(("__", "_")) for name in value), (topic, value)


def _first(emitted, topic: str, label: str) -> dict[str, Any]:
    return next(json.loads(raw) for t, raw in emitted if _kind(t, json.loads(raw)) == (topic, label))


OUTPUT_DEFECTS = [
    ("assistance.warnings.v1", "MEDICAL_SELF_PAY", "unknown field", {"score": 1}),
    ("assistance.warnings.v1", "MEDICAL_SELF_PAY", "members on a person's warning", {"members": [P]}),
    ("assistance.warnings.v1", "MEDICAL_SELF_PAY", "money as a number", {"tier": 30000}),
    ("assistance.warnings.v1", "MEDICAL_SELF_PAY", "money without fen", {"rolling_self_pay": "35000"}),
    ("assistance.warnings.v1", "MEDICAL_SELF_PAY", "missing tier", {"tier": DROP}),
    (
        "assistance.warnings.v1",
        "MEDICAL_SELF_PAY",
        "emitted_at without offset",
        {"emitted_at": "2024-01-01T00:00:00"},
    ),
    ("assistance.warnings.v1", "MEDICAL_SELF_PAY", "unknown rule", {"rule": "OTHER"}),
    (
        "assistance.warnings.v1",
        "MEDICAL_SELF_PAY",
        "as HOUSEHOLD without members",
        {"rule": "HOUSEHOLD_SELF_PAY"},
    ),
    ("assistance.warnings.v1", "DISABILITY_NURSING_ELIGIBLE", "level 3", {"level": 3}),
    ("assistance.warnings.v1", "DISABILITY_NURSING_ELIGIBLE", "a tier field", {"tier": "30000.00"}),
    ("assistance.warnings.v1", "DUPLICATE_ASSISTANCE", "one program", {"programs": ["dibao"]}),
    ("assistance.warnings.v1", "DUPLICATE_ASSISTANCE", "empty evidence", {"evidence": []}),
    ("assistance.warnings.v1", "POST_DEATH_ACTIVITY", "without died_on", {"died_on": DROP}),
    ("assistance.warnings.v1", "POST_DEATH_ACTIVITY", "without service_on", {"service_on": DROP}),
    ("assistance.warnings.v1", "POST_DEATH_ACTIVITY", "self_pay as a number", {"self_pay": 236.5}),
    ("assistance.warnings.v1", "POST_DEATH_ACTIVITY", "evidence without the death", {"evidence": ["b"]}),
    ("assistance.warnings.v1", "POST_DEATH_ACTIVITY", "a tier field", {"tier": "30000.00"}),
    ("assistance.warnings.v1", "POST_DEATH_ACTIVITY", "bad service_on", {"service_on": "2017-11-31"}),
    ("payment.stops.v1", "DEATH", "unknown reason", {"reason": "MOVED"}),
    ("payment.stops.v1", "DEATH", "mid-month effective_on", {"effective_on": "2017-10-15"}),
    ("payment.stops.v1", "DEATH", "missing emitted_at", {"emitted_at": DROP}),
    ("payment.stops.v1", "DISABILITY_LEVEL_INELIGIBLE", "for dibao", {"program": "dibao"}),
    ("payment.stops.v1", "DISABILITY_REVOKED", "for tekun", {"program": "tekun"}),
    ("payment.stops.v1", "DEATH", "without overpaid_months", {"overpaid_months": DROP}),
    ("payment.stops.v1", "DEATH", "without overpaid_amount", {"overpaid_amount": DROP}),
    ("payment.stops.v1", "DEATH", "negative overpaid_months", {"overpaid_months": -1}),
    ("payment.stops.v1", "DEATH", "fractional overpaid_months", {"overpaid_months": 1.5}),
    ("payment.stops.v1", "DEATH", "overpaid_amount as a number", {"overpaid_amount": 0}),
    ("payment.stops.v1", "DECEASED_ENROLLMENT", "without overpaid_amount", {"overpaid_amount": DROP}),
    ("payment.stops.v1", "DISABILITY_REVOKED", "with overpaid_months", {"overpaid_months": 0}),
    ("payment.stops.v1", "DISABILITY_LEVEL_INELIGIBLE", "with overpaid_amount", {"overpaid_amount": "0.00"}),
    ("payment.resumes.v1", "DEATH_WITHDRAWN", "with overpaid_amount", {"overpaid_amount": "0.00"}),
    ("payment.resumes.v1", "DEATH_WITHDRAWN", "other reason", {"reason": "DEATH"}),
    ("payment.resumes.v1", "DEATH_WITHDRAWN", "unknown field", {"note": "x"}),
    ("deadletter.v1", "schema", "unknown class", {"error_class": "other"}),
    ("deadletter.v1", "schema", "unknown field", {"headers": {}}),
    ("deadletter.v1", "schema", "negative offset", {"offset": -1}),
    ("deadletter.v1", "encoding", "value not base64", {"value": "not base64!"}),
    ("deadletter.v1", "encoding", "no value_encoding", {"value_encoding": DROP}),
    ("deadletter.v1", "too_large", "not truncated", {"value_truncated": DROP}),
]


@pytest.mark.parametrize(
    ("topic", "label", "what", "changes"), OUTPUT_DEFECTS, ids=[f"{t}:{w}" for t, _, w, _ in OUTPUT_DEFECTS]
)
def test_output_schema_rejects_what_the_contract_rules_out(emitted, topic, label, what, changes):
    good = _first(emitted, topic, label)
    assert schema_errors(topic, good) == []
    assert schema_errors(topic, changed(good, changes)), what


def test_warning_schema_accepts_contract_shaped_household_and_post_death_warnings():
    # Rules R7 and R4 are in the contract; these are the shapes it gives them.
    household = SelfPayWarning(
        warning_id="8b0d7c1e-1f7e-5c1a-9a40-1d6f1c2e3a4b",
        rule="HOUSEHOLD_SELF_PAY",
        person_id=P,
        region_code=REGION,
        household_id="HH-YINHU-DUMU-017",
        caused_by="YB-2017-0320",
        occurred_at=datetime(2017, 3, 20, 15, 12, tzinfo=timezone(timedelta(hours=8))),
        emitted_at="2024-05-01T08:00:00.123+00:00",
        evidence=("YB-2017-0101", "YB-2017-0214", "YB-2017-0320"),
        tier="30000.00",
        rolling_self_pay="35000.00",
        window_start=date(2016, 3, 20),
        window_end=date(2017, 3, 20),
        suggested_amount="12500.00",
        hardship_holder=False,
        members=(P, P2),
    )
    assert schema_errors("assistance.warnings.v1", encode(household)) == []
    post_death = {
        "warning_id": "0c4f3b7a-5d1e-5a3b-8c2d-6e7f8a9b0c1d",
        "rule": "POST_DEATH_ACTIVITY",
        "person_id": P,
        "region_code": REGION,
        "caused_by": "YB-2017-1001",
        "occurred_at": "2017-10-01T09:00:00+08:00",
        "emitted_at": "2024-05-01T08:00:00Z",
        "evidence": ["YB-2017-1001", "GA-SW-2017-0912"],
        "died_on": "2017-09-10",
        "service_on": "2017-09-30",
        "self_pay": "812.40",
    }
    assert schema_errors("assistance.warnings.v1", post_death) == []
    assert schema_errors("assistance.warnings.v1", changed(post_death, {"evidence": ["YB-2017-1001"]}))
    assert schema_errors("assistance.warnings.v1", changed(post_death, {"died_on": DROP}))


def test_dead_letter_of_non_utf8_value_carries_base64_of_the_bytes(emitted):
    letter = _first(emitted, "deadletter.v1", "encoding")
    assert letter["value_encoding"] == "base64"
    assert base64.b64decode(letter["value"]) == b'{"event_id": "bad-enc", "note": "\xff\xfe"}'
