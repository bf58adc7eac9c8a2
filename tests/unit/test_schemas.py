"""The JSON Schemas in ``schemas/`` against the contract and ``stream_app.records``.

Other departments validate their records with these schemas before they send
them, and consumers read our outputs by them; ``records.decode`` is what the
worker actually accepts. These tests keep the two in step: good records pass
both, bad records fail both (and the decoder's error names the field), and
every output the processor emits validates against its topic's schema.

How the schemas are read here, as a careful validator elsewhere would read them:
- JSON numbers are parsed as exact decimals (``parse_float=Decimal``, for the
  instances and for the schemas), so ``multipleOf: 0.01`` is exact;
- ``format`` is asserted (``date`` from jsonschema, ``date-time`` by a strict
  RFC 3339 checker below: jsonschema checks ``date-time`` only with an
  optional package that is not installed);
- ``pattern`` follows ECMA-262, the dialect JSON Schema names: ``$`` matches
  only at the very end (Python's ``$`` also matches before a final newline).

The edge cases at the end (lenient money strings, non-RFC 3339 datetimes, leap
seconds, trailing newlines, fields a reversal or withdrawal ignores) are where
msgspec alone would have disagreed with the contract.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators

from stream_app import records
from stream_app.demo_feed import stories
from stream_app.processing import INPUT_TYPES, DictState, Emit, Processor
from stream_app.records import (
    MAX_MONEY,
    DeadLetter,
    Rejected,
    SelfPayWarning,
    decode,
    encode,
    with_check_character,
)
from stream_app.settings import DEFAULT_TOPICS, load

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
#: The contract's topics ("Topics" table), in its order.
CONTRACT_TOPICS = (
    "medical.settlements.v1",
    "disability.registrations.v1",
    "death.registrations.v1",
    "subsidy.enrollments.v1",
    "assistance.warnings.v1",
    "payment.stops.v1",
    "payment.resumes.v1",
    "deadletter.v1",
)
MEDICAL, DISABILITY, DEATH, ENROLLMENT = CONTRACT_TOPICS[:4]
TOPIC_TYPE = {DEFAULT_TOPICS[logical]: cls for logical, cls in INPUT_TYPES.items()}
LIMIT = 65536
FAST = hsettings(
    max_examples=150, deadline=timedelta(milliseconds=500), suppress_health_check=[HealthCheck.too_slow]
)

P = with_check_character("33018319670305002")
P2 = with_check_character("33018319720811004")
PX = next(
    with_check_character(f"3301831980010{n:04d}")
    for n in range(1000)
    if with_check_character(f"3301831980010{n:04d}").endswith("X")
)
REGION = "330183004"

# ---------------------------------------------------------------------------
# Reading the schemas as the contract's readers would


def _rfc3339_datetime(instance: object) -> bool:
    """RFC 3339 section 5.6 date-time: seconds and an offset required, leap second allowed."""
    if not isinstance(instance, str):
        return True
    m = re.fullmatch(
        r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
        r"([Zz]|[+-]([0-9]{2}):([0-9]{2}))",
        instance,
    )
    if m is None:
        return False
    date(int(m[1]), int(m[2]), int(m[3]))  # ValueError: no such day
    hour, minute, second = int(m[4]), int(m[5]), int(m[6])
    offset_ok = m[9] is None or (int(m[9]) <= 23 and int(m[10]) <= 59)
    return hour <= 23 and minute <= 59 and second <= 60 and offset_ok


FORMATS = FormatChecker()
FORMATS.checks("date-time", raises=ValueError)(_rfc3339_datetime)


@functools.cache
def _ecma(pattern: str) -> re.Pattern[str]:
    # Our patterns use `$` only as "end of input"; ECMA-262 has no match before a final newline.
    return re.compile(re.sub(r"(?<!\\)\$", r"\\Z", pattern))


def _ecma_pattern(validator, pattern, instance, schema):
    if validator.is_type(instance, "string") and not _ecma(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


Validator = validators.extend(Draft202012Validator, {"pattern": _ecma_pattern})


def schema_path(topic: str) -> Path:
    return SCHEMA_DIR / f"{topic}.json"


@functools.cache
def schema(topic: str) -> dict[str, Any]:
    return json.loads(schema_path(topic).read_text(encoding="utf-8"), parse_float=Decimal)


@functools.cache
def validator(topic: str) -> Draft202012Validator:
    return Validator(schema(topic), format_checker=FORMATS)


def as_instance(value: dict[str, Any] | bytes) -> Any:
    raw = value if isinstance(value, bytes) else json.dumps(value, ensure_ascii=False).encode()
    return json.loads(raw, parse_float=Decimal)


def schema_errors(topic: str, value: dict[str, Any] | bytes) -> list[ValidationError]:
    return list(validator(topic).iter_errors(as_instance(value)))


def named_fields(errors: list[ValidationError]) -> set[str]:
    """Every field an error (or a nested one under anyOf/if-then) points at or finds missing."""
    fields: set[str] = set()
    for error in errors:
        fields.update(str(part) for part in error.absolute_path)
        if error.validator == "required" and isinstance(error.instance, dict):
            fields.update(name for name in error.validator_value if name not in error.instance)
        fields |= named_fields(list(error.context or ()))
    return fields


def decoded(topic: str, value: dict[str, Any] | bytes, key: str | None = None):
    raw = value if isinstance(value, bytes) else json.dumps(value, ensure_ascii=False).encode()
    if key is None and isinstance(value, dict) and isinstance(value.get("person_id"), str):
        key = value["person_id"]
    return decode(TOPIC_TYPE[topic], key.encode() if key is not None else None, raw, LIMIT)


# ---------------------------------------------------------------------------
# Record builders (plain dicts, as a producer would write them)


def settlement(**changes: Any) -> dict[str, Any]:
    value = {
        "event_id": "YB-2017-0214",
        "person_id": P,
        "region_code": REGION,
        "settled_at": "2017-02-14T10:00:00+08:00",
        "total_cost": "30000.00",
        "self_pay": "12000.00",
    }
    return _changed(value, changes)


def reversal(**changes: Any) -> dict[str, Any]:
    value = {
        "event_id": "YB-2017-0409-R",
        "person_id": P,
        "region_code": REGION,
        "settled_at": "2017-04-10T09:00:00+08:00",
        "kind": "reversal",
        "reverses": "YB-2017-0409",
    }
    return _changed(value, changes)


def certification(**changes: Any) -> dict[str, Any]:
    value = {
        "event_id": "CL-2017-0705",
        "person_id": P,
        "region_code": REGION,
        "status": "certified",
        "level": 1,
        "effective_on": "2017-07-05",
    }
    return _changed(value, changes)


def death(**changes: Any) -> dict[str, Any]:
    value = {
        "event_id": "GA-SW-2017-0912",
        "person_id": P,
        "region_code": REGION,
        "died_on": "2017-09-10",
        "registered_at": "2017-09-12T10:00:00+08:00",
    }
    return _changed(value, changes)


def withdrawal(**changes: Any) -> dict[str, Any]:
    value = {
        "event_id": "GA-SW-2017-1103-W",
        "person_id": P,
        "region_code": REGION,
        "registered_at": "2017-11-03T09:00:00+08:00",
        "status": "withdrawn",
        "withdraws": "GA-SW-2017-0912",
    }
    return _changed(value, changes)


def enrollment(**changes: Any) -> dict[str, Any]:
    value = {
        "event_id": "MZ-DB-2017-0811",
        "person_id": P,
        "region_code": REGION,
        "program": "dibao",
        "status": "active",
        "monthly_amount": "1836",
        "effective_on": "2017-08-01",
    }
    return _changed(value, changes)


DROP = object()


def _changed(value: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    value = dict(value)
    for name, new in changes.items():
        if new is DROP:
            value.pop(name, None)
        else:
            value[name] = new
    return value


# ---------------------------------------------------------------------------
# (a) the schema files


def test_schema_files_are_one_per_contract_topic():
    assert sorted(p.name for p in SCHEMA_DIR.glob("*.json")) == sorted(f"{t}.json" for t in CONTRACT_TOPICS)
    assert set(DEFAULT_TOPICS.values()) == set(CONTRACT_TOPICS)


@pytest.mark.parametrize("topic", CONTRACT_TOPICS)
def test_schema_file_is_a_valid_draft_2020_12_schema(topic):
    doc = schema(topic)
    Draft202012Validator.check_schema(doc)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["$id"] == f"https://benefit-integrity.example/schemas/{topic}.json"
    assert doc["title"] and doc["description"]
    assert doc["type"] == "object"
    # Every pattern is a valid ECMA-262-compatible regex (and compiles here).
    for pattern in _all_values(doc, "pattern"):
        _ecma(pattern)


@pytest.mark.parametrize("topic", CONTRACT_TOPICS[:4])
def test_input_schema_allows_unknown_fields(topic):
    assert schema(topic)["additionalProperties"] is True


@pytest.mark.parametrize("topic", CONTRACT_TOPICS[4:])
def test_output_schema_is_closed(topic):
    doc = schema(topic)
    assert doc.get("additionalProperties") is False or doc.get("unevaluatedProperties") is False


def test_person_id_description_says_the_check_character_is_not_expressible():
    for topic in CONTRACT_TOPICS[:7]:
        text = schema(topic)["$defs"]["personId"]["description"]
        assert "ISO 7064 MOD 11-2" in text and "cannot express" in text


@pytest.mark.parametrize("topic", CONTRACT_TOPICS[:4])
def test_input_schema_examples_are_accepted_by_schema_and_decode(topic):
    examples = schema(topic)["examples"]
    assert examples
    for example in examples:
        value = json.loads(json.dumps(example, default=str))
        assert schema_errors(topic, value) == []
        assert isinstance(decoded(topic, value), TOPIC_TYPE[topic])


def _all_values(node: Any, keyword: str):
    if isinstance(node, dict):
        for name, child in node.items():
            if name == keyword and isinstance(child, str):
                yield child
            else:
                yield from _all_values(child, keyword)
    elif isinstance(node, list):
        for child in node:
            yield from _all_values(child, keyword)


# ---------------------------------------------------------------------------
# (b) good input records: both accept

GOOD: list[tuple[str, str, dict[str, Any]]] = [
    (MEDICAL, "string money", settlement()),
    (MEDICAL, "number money", settlement(total_cost=21000, self_pay=8000.5)),
    (MEDICAL, "zero and one fen", settlement(total_cost="0.01", self_pay=0)),
    (MEDICAL, "one decimal string", settlement(self_pay="0.5")),
    (MEDICAL, "exponent number", settlement(self_pay=1.5e3)),
    (MEDICAL, "kind settlement explicit", settlement(kind="settlement")),
    (MEDICAL, "household and service date", settlement(household_id="HH-1", service_on="2017-02-13")),
    (MEDICAL, "null optionals", settlement(household_id=None, service_on=None, reverses=None)),
    (MEDICAL, "UTC Z", settlement(settled_at="2017-02-14T02:00:00Z")),
    (MEDICAL, "lower-case t and z", settlement(settled_at="2017-02-14t02:00:00z")),
    (MEDICAL, "negative offset, fraction", settlement(settled_at="2017-02-13T21:00:00.250-05:00")),
    (MEDICAL, "unknown extra fields", settlement(source={"system": "YB", "v": [1, 2]}, note=None)),
    (MEDICAL, "check character X", settlement(person_id=PX)),
    (MEDICAL, "event_id of 1 char", settlement(event_id="e")),
    (MEDICAL, "event_id of 128 chars", settlement(event_id="结" * 128)),
    (MEDICAL, "reversal", reversal()),
    (MEDICAL, "reversal ignores bad amounts", reversal(total_cost="-5.123", self_pay=-1)),
    (MEDICAL, "reversal with amounts", reversal(total_cost="0", self_pay="0", service_on="2017-04-09")),
    (DISABILITY, "certified level 1", certification(category="physical")),
    (DISABILITY, "certified level 4", certification(level=4)),
    (DISABILITY, "revoked without level", certification(status="revoked", level=DROP)),
    (DISABILITY, "expired, null level", certification(status="expired", level=None, category=None)),
    (DISABILITY, "revoked with old level", certification(status="revoked", level=3)),
    (DEATH, "registered (default)", death()),
    (DEATH, "registered explicit", death(status="registered", withdraws=None)),
    (DEATH, "withdrawal", withdrawal()),
    (DEATH, "withdrawal with died_on", withdrawal(died_on="2017-09-10")),
    (DEATH, "withdrawal with null died_on", withdrawal(died_on=None)),
    (ENROLLMENT, "dibao", enrollment()),
    (ENROLLMENT, "tekun number amount", enrollment(program="tekun", monthly_amount=1200)),
    (ENROLLMENT, "disability_living", enrollment(program="disability_living", monthly_amount="300.50")),
    (ENROLLMENT, "disability_nursing ended", enrollment(program="disability_nursing", status="ended")),
    (ENROLLMENT, "other program of 64 chars", enrollment(program="x_1" * 21 + "z")),
    (ENROLLMENT, "zero amount", enrollment(monthly_amount=0)),
    (ENROLLMENT, "leap day", enrollment(effective_on="2016-02-29")),
]


@pytest.mark.parametrize(("topic", "what", "value"), GOOD, ids=[f"{t}:{w}" for t, w, _ in GOOD])
def test_good_input_is_accepted_by_schema_and_decode(topic, what, value):
    assert schema_errors(topic, value) == []
    rec = decoded(topic, value)
    assert isinstance(rec, TOPIC_TYPE[topic]), rec


# ---------------------------------------------------------------------------
# (c) bad input records: both reject, the decoder's error names the field

REQUIRED = {
    MEDICAL: (settlement, ("event_id", "person_id", "region_code", "settled_at", "total_cost", "self_pay")),
    DISABILITY: (certification, ("event_id", "person_id", "region_code", "status", "effective_on", "level")),
    DEATH: (death, ("event_id", "person_id", "region_code", "registered_at", "died_on")),
    ENROLLMENT: (
        enrollment,
        ("event_id", "person_id", "region_code", "program", "status", "monthly_amount", "effective_on"),
    ),
}
#: Fields of the same kind on every input topic: the same defects on each.
DATETIME_FIELDS = {MEDICAL: ("settled_at",), DEATH: ("registered_at",), DISABILITY: (), ENROLLMENT: ()}
DATE_FIELDS = {MEDICAL: ("service_on",), DEATH: ("died_on",), DISABILITY: ("effective_on",)}
DATE_FIELDS[ENROLLMENT] = ("effective_on",)
SHARED_DEFECTS = {
    "event_id": ("", "e" * 129, 7),
    "person_id": (P[:17], P + "0", "33018319670305002x", None),
    "region_code": ("33018300", "3301830041", "33018300A", "３３０１８３００４"),
}
BAD: list[tuple[str, str, str, dict[str, Any]]] = (
    [
        (topic, f"missing {name}", name, build(**{name: DROP}))
        for topic, (build, names) in REQUIRED.items()
        for name in names
    ]
    + [
        (topic, f"{name} {bad!r}", name, build(**{name: bad}))
        for topic, (build, _) in REQUIRED.items()
        for name, values in SHARED_DEFECTS.items()
        for bad in values
    ]
    + [
        (topic, f"{name} {bad}", name, build(**{name: bad}))
        for topic, (build, _) in REQUIRED.items()
        for name in DATETIME_FIELDS[topic]
        for bad in ("2017-02-14T10:00:00", "2017-02-14T10:00:00.5", "2017-02-14")
    ]
    + [
        (topic, f"{name} {bad}", name, build(**{name: bad}))
        for topic, (build, _) in REQUIRED.items()
        for name in DATE_FIELDS[topic]
        for bad in ("2017-02-30", "2017-13-01", "2017-3-14", "20170314", "2017-03-14T00:00:00Z")
    ]
) + [
    (MEDICAL, "reversal without reverses", "reverses", reversal(reverses=DROP)),
    (MEDICAL, "reversal with null reverses", "reverses", reversal(reverses=None)),
    (MEDICAL, "reversal with empty reverses", "reverses", reversal(reverses="")),
    (MEDICAL, "settlement with null self_pay", "self_pay", settlement(self_pay=None)),
    (DEATH, "withdrawal without withdraws", "withdraws", withdrawal(withdraws=DROP)),
    (DEATH, "withdrawal with null withdraws", "withdraws", withdrawal(withdraws=None)),
    (DEATH, "registration with null died_on", "died_on", death(died_on=None)),
    (DISABILITY, "certified with null level", "level", certification(level=None)),
    # wrong type
    (MEDICAL, "event_id a number", "event_id", settlement(event_id=101)),
    (MEDICAL, "person_id a number", "person_id", settlement(person_id=330183196703050021)),
    (MEDICAL, "region_code a number", "region_code", settlement(region_code=330183004)),
    (MEDICAL, "settled_at a number", "settled_at", settlement(settled_at=1487037600)),
    (MEDICAL, "total_cost a bool", "total_cost", settlement(total_cost=True)),
    (MEDICAL, "self_pay a list", "self_pay", settlement(self_pay=[12000])),
    (MEDICAL, "kind a number", "kind", settlement(kind=1)),
    (MEDICAL, "household_id a number", "household_id", settlement(household_id=17)),
    (MEDICAL, "service_on a number", "service_on", settlement(service_on=20170213)),
    (MEDICAL, "reverses a number", "reverses", reversal(reverses=409)),
    (DISABILITY, "level a string", "level", certification(level="1")),
    (DISABILITY, "level a fraction", "level", certification(level=2.5)),
    (DISABILITY, "status a number", "status", certification(status=1)),
    (DISABILITY, "category a number", "category", certification(category=3)),
    (DEATH, "withdraws a list", "withdraws", withdrawal(withdraws=["GA-SW-2017-0912"])),
    (DEATH, "registered_at an object", "registered_at", death(registered_at={"at": "2017"})),
    (ENROLLMENT, "monthly_amount null", "monthly_amount", enrollment(monthly_amount=None)),
    (ENROLLMENT, "effective_on a number", "effective_on", enrollment(effective_on=20170801)),
    (ENROLLMENT, "program a number", "program", enrollment(program=7)),
    # bad pattern or length
    (MEDICAL, "person_id of 17 chars", "person_id", settlement(person_id=P[:17])),
    (MEDICAL, "person_id of 19 chars", "person_id", settlement(person_id=P + "1")),
    (MEDICAL, "person_id lower-case x", "person_id", settlement(person_id=PX[:17] + "x")),
    (MEDICAL, "person_id with letters", "person_id", settlement(person_id="33018319670305A021")),
    (MEDICAL, "person_id full-width digits", "person_id", settlement(person_id="３" * 18)),
    (MEDICAL, "region_code of 8 digits", "region_code", settlement(region_code="33018300")),
    (MEDICAL, "region_code of 10 digits", "region_code", settlement(region_code="3301830040")),
    (MEDICAL, "region_code with a letter", "region_code", settlement(region_code="33018300A")),
    (MEDICAL, "empty event_id", "event_id", settlement(event_id="")),
    (MEDICAL, "event_id of 129 chars", "event_id", settlement(event_id="e" * 129)),
    (ENROLLMENT, "program upper case", "program", enrollment(program="Dibao")),
    (ENROLLMENT, "program with a dash", "program", enrollment(program="di-bao")),
    (ENROLLMENT, "program of 65 chars", "program", enrollment(program="p" * 65)),
    (ENROLLMENT, "empty program", "program", enrollment(program="")),
    # money
    (MEDICAL, "negative number", "self_pay", settlement(self_pay=-1)),
    (MEDICAL, "negative string", "total_cost", settlement(total_cost="-0.01")),
    (MEDICAL, "3 decimals number", "self_pay", settlement(self_pay=1.005)),
    (MEDICAL, "3 decimals string", "total_cost", settlement(total_cost="1.005")),
    (MEDICAL, "not a number string", "self_pay", settlement(self_pay="abc")),
    (MEDICAL, "thousands separator", "self_pay", settlement(self_pay="12,000")),
    (MEDICAL, "NaN string", "self_pay", settlement(self_pay="NaN")),
    (MEDICAL, "Infinity string", "total_cost", settlement(total_cost="Infinity")),
    (ENROLLMENT, "tiny fraction", "monthly_amount", enrollment(monthly_amount=1e-7)),
    (ENROLLMENT, "negative amount", "monthly_amount", enrollment(monthly_amount="-1836")),
    # datetimes
    (MEDICAL, "datetime without offset", "settled_at", settlement(settled_at="2017-02-14T10:00:00")),
    (MEDICAL, "datetime date only", "settled_at", settlement(settled_at="2017-02-14")),
    (MEDICAL, "datetime without seconds", "settled_at", settlement(settled_at="2017-02-14T10:00+08:00")),
    (MEDICAL, "datetime hour offset only", "settled_at", settlement(settled_at="2017-02-14T10:00:00+08")),
    (MEDICAL, "datetime no such day", "settled_at", settlement(settled_at="2017-02-30T10:00:00+08:00")),
    (MEDICAL, "datetime hour 24", "settled_at", settlement(settled_at="2017-02-14T24:00:00+08:00")),
    (DEATH, "datetime without offset", "registered_at", death(registered_at="2017-09-12T10:00:00")),
    (DEATH, "datetime basic format", "registered_at", death(registered_at="20170912T100000Z")),
    # dates
    (MEDICAL, "no such date", "service_on", settlement(service_on="2017-02-30")),
    (DISABILITY, "no such date", "effective_on", certification(effective_on="2017-02-30")),
    (DISABILITY, "month 13", "effective_on", certification(effective_on="2017-13-01")),
    (DEATH, "no leap day", "died_on", death(died_on="2017-02-29")),
    (DEATH, "slashes", "died_on", death(died_on="2017/09/10")),
    (ENROLLMENT, "basic format", "effective_on", enrollment(effective_on="20170801")),
    (ENROLLMENT, "single-digit month", "effective_on", enrollment(effective_on="2017-8-01")),
    (ENROLLMENT, "a datetime", "effective_on", enrollment(effective_on="2017-08-01T00:00:00+08:00")),
    # enums
    (MEDICAL, "unknown kind", "kind", settlement(kind="refund")),
    (MEDICAL, "null kind", "kind", settlement(kind=None)),
    (MEDICAL, "kind in capitals", "kind", settlement(kind="REVERSAL", reverses="x")),
    (DISABILITY, "unknown status", "status", certification(status="suspended")),
    (DEATH, "unknown status", "status", death(status="cancelled")),
    (DEATH, "null status", "status", death(status=None)),
    (ENROLLMENT, "unknown status", "status", enrollment(status="paused")),
    # certification level
    (DISABILITY, "level 0", "level", certification(level=0)),
    (DISABILITY, "level 5", "level", certification(level=5)),
    (DISABILITY, "level -1", "level", certification(level=-1)),
    (DISABILITY, "revoked with level 7", "level", certification(status="revoked", level=7)),
]


@pytest.mark.parametrize(("topic", "what", "field", "value"), BAD, ids=[f"{t}:{w}" for t, w, _, _ in BAD])
def test_bad_input_is_rejected_by_decode_and_schema_naming_the_field(topic, what, field, value):
    rec = decoded(topic, value, key=P)
    assert isinstance(rec, Rejected), rec
    assert rec.error_class == "schema"
    assert f"`{field}`" in rec.error
    errors = schema_errors(topic, value)
    assert errors, f"the schema accepts {what}"
    assert field in named_fields(errors), [e.message for e in errors]


@pytest.mark.parametrize(
    ("topic", "build", "field"),
    [(MEDICAL, settlement, "settled_at"), (DEATH, death, "registered_at")],
    ids=["settled_at", "registered_at"],
)
def test_datetime_without_offset_is_rejected_even_where_format_is_only_an_annotation(topic, build, field):
    plain = Validator(schema(topic))  # no format assertion: the pattern alone
    assert not list(plain.iter_errors(as_instance(build())))
    for bad in ("2017-02-14T10:00:00", "2017-02-14T10:00:00.5", "2017-02-14 10:00:00+08:00", "2017-02-14"):
        assert list(plain.iter_errors(as_instance(build(**{field: bad})))), bad


def test_bad_input_corpus_covers_every_defect_the_contract_lists():
    whats = " | ".join(what for _, what, _, _ in BAD)
    for defect in (
        "missing",
        "a number",
        "person_id of 17",
        "negative",
        "3 decimals",
        "without offset",
        "no such date",
        "unknown status",
        "unknown kind",
        "reversal without reverses",
        "missing level",
        "level 5",
        "withdrawal without withdraws",
        "missing died_on",
    ):
        assert defect in whats, defect


#: Defects JSON Schema cannot express: the schema accepts them, decode rejects them.
SCHEMA_CANNOT_EXPRESS = [
    (
        MEDICAL,
        "person_id check character (ISO 7064 MOD 11-2)",
        "person_id",
        settlement(person_id=P[:17] + "0"),
    ),
    (ENROLLMENT, "person_id X where a digit is due", "person_id", enrollment(person_id=P[:17] + "X")),
    (DEATH, "person_id digit where X is due", "person_id", death(person_id=PX[:17] + "1")),
]


@pytest.mark.parametrize(
    ("topic", "what", "field", "value"),
    SCHEMA_CANNOT_EXPRESS,
    ids=[w for _, w, _, _ in SCHEMA_CANNOT_EXPRESS],
)
def test_check_character_defect_is_rejected_by_decode_only(topic, what, field, value):
    assert schema_errors(topic, value) == []
    rec = decoded(topic, value, key=value["person_id"])
    assert isinstance(rec, Rejected) and rec.error_class == "schema" and f"`{field}`" in rec.error


# ---------------------------------------------------------------------------
# Generated values: accepted by the schema iff accepted by decode


def _money_accepted(value: Any) -> tuple[bool, bool]:
    record = enrollment(monthly_amount=value)
    by_schema = not schema_errors(ENROLLMENT, record)
    by_decode = isinstance(decoded(ENROLLMENT, record), records.SubsidyEnrollment)
    return by_schema, by_decode


def _known_lenient_money_string(text: str) -> bool:
    """Forms decode accepts that the contract rules out (see test_decode_rejects_money_string_...)."""
    amount = Decimal(text)
    if text.startswith("-") and amount == 0:
        return True  # "-0.00"
    fraction = text.partition(".")[2]
    return len(fraction) > 2 and (amount * 100) == (amount * 100).to_integral_value()  # "1.500"


@FAST
@given(st.from_regex(r"\A-?[0-9]{1,11}(\.[0-9]{1,4})?\Z"))
def test_money_string_is_accepted_by_schema_iff_by_decode(text):
    assume(not _known_lenient_money_string(text))
    by_schema, by_decode = _money_accepted(text)
    assert by_schema == by_decode
    amount = Decimal(text)
    assert by_schema == (amount >= 0 and amount == amount.quantize(Decimal("0.01")))


@FAST
@given(
    st.integers(min_value=0, max_value=4).flatmap(
        lambda places: st.decimals(
            min_value=-MAX_MONEY, max_value=MAX_MONEY, places=places, allow_nan=False, allow_infinity=False
        )
    ),
    st.booleans(),
)
def test_money_number_is_accepted_by_schema_iff_by_decode(amount, scientific):
    number = format(amount, "E") if scientific else str(amount)
    record = json.dumps(enrollment(monthly_amount="@")).replace('"@"', number).encode()
    by_schema = not schema_errors(ENROLLMENT, record)
    by_decode = isinstance(decoded(ENROLLMENT, record, key=P), records.SubsidyEnrollment)
    assert by_schema == by_decode
    assert by_schema == (amount >= 0 and amount * 100 == (amount * 100).to_integral_value())


@FAST
@given(st.from_regex(r"\A[0-9]{17}\Z"), st.sampled_from("0123456789X"))
def test_person_id_passes_schema_and_decode_differs_only_by_check_character(first17, check):
    person_id = first17 + check
    record = enrollment(person_id=person_id)
    assert schema_errors(ENROLLMENT, record) == []
    rec = decoded(ENROLLMENT, record)
    assert isinstance(rec, records.SubsidyEnrollment) == (person_id == with_check_character(first17))


@FAST
@given(st.integers(1900, 2100), st.integers(0, 13), st.integers(0, 32))
def test_date_is_accepted_by_schema_iff_by_decode_iff_it_exists(year, month, day):
    text = f"{year:04d}-{month:02d}-{day:02d}"
    try:
        exists = date(year, month, day).isoformat() == text
    except ValueError:
        exists = False
    record = certification(effective_on=text)
    assert (not schema_errors(DISABILITY, record)) == exists
    assert isinstance(decoded(DISABILITY, record), records.DisabilityRegistration) == exists


OFFSETS = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))


@FAST
@given(
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)),
    st.one_of(st.none(), OFFSETS),
    st.sampled_from(["seconds", "milliseconds", "microseconds"]),
)
def test_datetime_is_accepted_by_schema_iff_by_decode_iff_it_has_an_offset(moment, offset, timespec):
    text = moment.replace(tzinfo=offset).isoformat(timespec=timespec)
    record = settlement(settled_at=text)
    assert (not schema_errors(MEDICAL, record)) == (offset is not None)
    assert isinstance(decoded(MEDICAL, record), records.MedicalSettlement) == (offset is not None)


# ---------------------------------------------------------------------------
# (d) outputs: everything the processor emits validates against its topic's schema


def _raw(value: dict[str, Any] | bytes) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value, ensure_ascii=False).encode()


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
        out.append((topic, raw_key, None if value is None else _raw(value)))
    return out


def _story_feed() -> list[tuple[str, bytes | None, bytes | None]]:
    topics = load({}).topics
    out = []
    for _, story in stories():
        fallback = next((v["person_id"] for _, v in story if isinstance(v, dict)), "")
        for logical, value in story:
            key = value["person_id"] if isinstance(value, dict) else fallback
            out.append((topics[logical], key.encode(), _raw(value)))
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
        for item in processor.process(topic, 0, offset, key, value).emits:
            out.append((settings.topics[item.topic], _stamped(item)))
    return out


def _kind(topic: str, value: dict[str, Any]) -> tuple[str, str]:
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
    assert schema_errors(topic, _changed(good, changes)), what


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
    assert schema_errors("assistance.warnings.v1", _changed(post_death, {"evidence": ["YB-2017-1001"]}))
    assert schema_errors("assistance.warnings.v1", _changed(post_death, {"died_on": DROP}))


def test_dead_letter_of_non_utf8_value_carries_base64_of_the_bytes(emitted):
    letter = _first(emitted, "deadletter.v1", "encoding")
    assert letter["value_encoding"] == "base64"
    assert base64.b64decode(letter["value"]) == b'{"event_id": "bad-enc", "note": "\xff\xfe"}'


# ---------------------------------------------------------------------------
# Edge cases where a plain msgspec decode would disagree with the contract.

LENIENT_MONEY = [
    "1e2",
    "1E+2",
    " 12",
    "12 ",
    "1_000",
    "+12",
    "12.",
    ".5",
    "１２",
    "٣",
    "-0",
    "-0.00",
    "0.010",
]


@pytest.mark.parametrize("text", LENIENT_MONEY)
def test_decode_rejects_money_string_that_is_not_a_plain_decimal(text):
    record = settlement(self_pay=text)
    assert schema_errors(MEDICAL, record)
    rec = decoded(MEDICAL, record)
    assert isinstance(rec, Rejected) and "`self_pay`" in rec.error


@pytest.mark.parametrize("text", ["2017-02-14 10:00:00+08:00", "2017-02-14T10:00:00+0800"])
def test_decode_rejects_datetime_that_is_not_rfc3339(text):
    record = settlement(settled_at=text)
    assert schema_errors(MEDICAL, record)
    rec = decoded(MEDICAL, record)
    assert isinstance(rec, Rejected) and "`settled_at`" in rec.error


def test_decode_accepts_rfc3339_leap_second():
    record = settlement(settled_at="2016-12-31T23:59:60Z")
    assert schema_errors(MEDICAL, record) == []
    assert isinstance(decoded(MEDICAL, record), records.MedicalSettlement)


@pytest.mark.parametrize(
    ("topic", "field", "value"),
    [
        (MEDICAL, "region_code", settlement(region_code=REGION + "\n")),
        (ENROLLMENT, "program", enrollment(program="dibao\n")),
    ],
    ids=["region_code", "program"],
)
def test_decode_rejects_code_with_trailing_newline(topic, field, value):
    assert schema_errors(topic, value)
    rec = decoded(topic, value)
    assert isinstance(rec, Rejected) and f"`{field}`" in rec.error


@pytest.mark.parametrize("amount", ["200000000000", 200000000000.5])
def test_decode_accepts_money_above_max_money(amount):
    record = settlement(total_cost=amount)
    assert schema_errors(MEDICAL, record) == []
    assert isinstance(decoded(MEDICAL, record), records.MedicalSettlement)


@pytest.mark.parametrize("household_id", ["", "H" * 129], ids=["empty", "129 chars"])
def test_decode_accepts_any_household_id_string(household_id):
    record = settlement(household_id=household_id)
    assert schema_errors(MEDICAL, record) == []
    assert isinstance(decoded(MEDICAL, record), records.MedicalSettlement)


@pytest.mark.parametrize(
    ("topic", "value"),
    [
        (MEDICAL, reversal(service_on="unknown")),
        (MEDICAL, reversal(total_cost="n/a")),
        (MEDICAL, reversal(self_pay=True)),
        (DEATH, withdrawal(died_on="2017-02-30")),
    ],
    ids=["reversal service_on", "reversal total_cost", "reversal self_pay", "withdrawal died_on"],
)
def test_decode_accepts_ignored_field_of_any_value(topic, value):
    assert schema_errors(topic, value) == []
    assert isinstance(decoded(topic, value), TOPIC_TYPE[topic])
