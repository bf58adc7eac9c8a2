"""Edge cases where a plain msgspec decode would have disagreed with the contract:
lenient money strings, datetimes that are not RFC 3339, leap seconds, trailing
newlines, and fields a reversal or withdrawal ignores."""

from __future__ import annotations

import pytest

from stream_app import records
from stream_app.records import Rejected
from tests.builders import REGION
from tests.builders import sample_enrollment as enrollment
from tests.builders import sample_reversal as reversal
from tests.builders import sample_settlement as settlement
from tests.builders import sample_withdrawal as withdrawal
from tests.contract_schemas import DEATH, ENROLLMENT, MEDICAL, TOPIC_TYPE, decoded, schema_errors

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


@pytest.mark.parametrize("amount", ["200000000000", 200000000000.5, "1000000000000000.00", 10**15])
def test_decode_accepts_money_up_to_max_money(amount):
    record = settlement(total_cost=amount)
    assert schema_errors(MEDICAL, record) == []
    assert isinstance(decoded(MEDICAL, record), records.MedicalSettlement)


@pytest.mark.parametrize("amount", ["1000000000000000.01", "9999999999999999", 10**15 + 1, 1e16])
def test_decode_rejects_money_above_max_money_naming_the_field(amount):
    # The contract sets no ceiling (nor does the schema); state keeps fen in 64-bit
    # integers, so the worker refuses what it could not store, as bad input.
    assert records.MAX_MONEY == 10**15
    rec = decoded(MEDICAL, settlement(total_cost=amount))
    assert isinstance(rec, Rejected) and rec.error_class == "schema" and "`total_cost`" in rec.error


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
