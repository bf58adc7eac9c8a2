"""Good input: every record the contract allows passes both the topic's JSON Schema and
``records.decode``; generated values (money, identity numbers, dates, datetimes) are
accepted by the schema exactly when the decoder accepts them."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from stream_app import records
from stream_app.records import MAX_MONEY, with_check_character
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
    TOPIC_TYPE,
    decoded,
    schema_errors,
)

FAST = hsettings(
    max_examples=150, deadline=timedelta(milliseconds=500), suppress_health_check=[HealthCheck.too_slow]
)

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
