"""Bad input: each defect the contract lists is rejected by ``records.decode`` (a
``schema`` dead letter whose error names the field) and by the topic's JSON Schema,
except the identity number's check character, which JSON Schema cannot express."""

from __future__ import annotations

from typing import Any

import pytest

from stream_app.records import Rejected
from tests.builders import CHECK_X_PERSON as PX
from tests.builders import DROP
from tests.builders import SAMPLE_PERSON as P
from tests.builders import sample_certification as certification
from tests.builders import sample_death as death
from tests.builders import sample_enrollment as enrollment
from tests.builders import sample_reversal as reversal
from tests.builders import sample_settlement as settlement
from tests.builders import sample_withdrawal as withdrawal
from tests.contract_schemas import (
    DEATH,
    DISABILITY,
    ENROLLMENT,
    MEDICAL,
    Validator,
    as_instance,
    decoded,
    named_fields,
    schema,
    schema_errors,
)

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
