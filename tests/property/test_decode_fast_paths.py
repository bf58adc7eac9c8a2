"""Fast paths give exactly what the general paths give: decoding (values and error texts), ids."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from unittest.mock import patch
from zoneinfo import ZoneInfo

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app import records
from stream_app.records import _Bad, _money, _money_general, _money_valid, person_id_valid
from stream_app.rules import common, household

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def reference_check(person_id: str) -> bool:
    """ISO 7064 MOD 11-2 as the contract states it: weighted digit sum, one digit at a time."""
    if len(person_id) != 18 or not person_id[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(person_id[:17], WEIGHTS, strict=True))
    return "10X98765432"[total % 11] == person_id[17]


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet="0123456789X", min_size=17, max_size=19))
def test_person_id_check_equals_the_digit_by_digit_sum(text):
    assert person_id_valid(text) == reference_check(text)


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"\A[0-9]{17}\Z"))
def test_every_first17_has_exactly_one_valid_check_character(first17):
    assert [c for c in "0123456789X" if person_id_valid(first17 + c)] == [
        records.with_check_character(first17)[17]
    ]


def outcome(fn, token: bytes):
    try:
        value = fn(msgspec.Raw(token), "self_pay") if fn is not _money_general else fn(token, "self_pay")
    except _Bad as bad:
        return ("bad", bad.rejected.error)
    return ("ok", value, str(value) if isinstance(value, Decimal) else None)


money_tokens = st.one_of(
    st.from_regex(rb'\A"-?[0-9]{0,17}(\.[0-9]{0,4})?"\Z'),
    st.from_regex(rb"\A-?(0|[1-9][0-9]{0,16})(\.[0-9]{1,4})?([eE][+-]?[0-9]{1,2})?\Z"),
    st.from_regex(rb"\A0[0-9]{1,3}(\.[0-9]{1,2})?\Z"),
    st.sampled_from([b"null", b"true", b'"1e2"', b'"\\u0031"', b'"1.5 "', b"1.", b'""', b'"."']),
)


@settings(max_examples=3000, deadline=None)
@given(money_tokens)
def test_money_fast_path_equals_the_general_path(token):
    general = outcome(_money_general, token)
    assert outcome(_money, token) == general
    valid = outcome(_money_valid, token)
    assert valid[0] == general[0] and (valid[0] == "ok" or valid == general)


def strict_decode(record_type, key, value):
    """decode() with every value parsed by the strict decoder (the patterns in msgspec)."""
    with patch.object(records, "_parse", lambda t, text: records._DECODERS[t].decode(text)):
        return records.decode(record_type, key, value, 65536)


GOOD_ID = records.with_check_character("33018319670305002")
texts = {
    "person_id": [GOOD_ID, GOOD_ID[:17] + "0", GOOD_ID + "\n", GOOD_ID[:17], "３３" + GOOD_ID[2:], 5, None],
    "region_code": ["330183004", "33018300", "330183004\n", "٣30183004", 330183004],
    "settled_at": [
        "2017-03-14T10:21:00+08:00",
        "2017-03-14t10:21:00z",
        "2017-03-14T10:21:00",
        "2017-02-30T10:21:00Z",
        "2017-03-14T10:21:60.5+08:00",
        "2017-03-14T10:21:00+08:00\n",
        "x",
    ],
    "registered_at": ["2017-03-14T10:21:00+08:00", "2017-03-14 10:21:00+08:00", 7],
    "program": ["dibao", "Dibao", "a" * 64, "a" * 65, "dibao\n", "", "x-y"],
    "event_id": ["e1", "", "e" * 129],
    "self_pay": ["12.30", 12.3, "-1", None],
    "died_on": ["2017-03-01", "2017-02-30"],
    "level": [1, 5, None],
}
SHAPES = {
    records.MedicalSettlement: ("event_id", "person_id", "region_code", "settled_at", "self_pay"),
    records.DeathRegistration: ("event_id", "person_id", "region_code", "registered_at", "died_on"),
    records.SubsidyEnrollment: ("event_id", "person_id", "region_code", "program"),
    records.DisabilityRegistration: ("event_id", "person_id", "region_code", "level"),
}
BASE = {
    records.MedicalSettlement: {"total_cost": "1"},
    records.DeathRegistration: {},
    records.SubsidyEnrollment: {"status": "active", "monthly_amount": "500", "effective_on": "2017-01-01"},
    records.DisabilityRegistration: {"status": "certified", "effective_on": "2017-01-01"},
}


@st.composite
def values(draw):
    record_type = draw(st.sampled_from(list(SHAPES)))
    value = dict(BASE[record_type])
    for name in SHAPES[record_type]:
        if draw(st.integers(0, 9)):  # now and then a field is missing
            value[name] = draw(st.sampled_from(texts[name]))
    order = draw(st.permutations(list(value)))
    raw = json.dumps({name: value[name] for name in order}, ensure_ascii=False).encode()
    return record_type, raw, value.get("person_id")


@settings(max_examples=1500, deadline=None)
@given(values())
def test_lean_parse_decodes_exactly_as_the_strict_decoder(case):
    record_type, raw, key = case
    key = key.encode() if isinstance(key, str) else None
    assert records.decode(record_type, key, raw, 65536) == strict_decode(record_type, key, raw)


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.text(max_size=40), min_size=1, max_size=7))
def test_output_id_is_uuid5_of_the_joined_parts(parts):
    expected = str(uuid.uuid5(common._ID_NAMESPACE, "|".join(parts)))
    assert common.output_id(*parts) == expected


def general_datetime(text: str):
    """The datetime as the general path reads it: upper-cased, a leap second as the next second."""
    leap = text[17:19] == "60"
    text = text.upper()
    try:
        moment = datetime.fromisoformat(text[:17] + "59" + text[19:] if leap else text)
    except ValueError:
        return ("bad", f"{text!r}")
    return ("ok", moment + timedelta(seconds=1) if leap else moment, moment.utcoffset())


def datetime_outcome(text: str):
    try:
        moment = records._datetime(text, "settled_at")
    except _Bad as bad:
        return ("bad", bad.rejected.error.split(" is not")[0].removeprefix("field `settled_at`: "))
    return ("ok", moment, moment.utcoffset())


@settings(max_examples=3000, deadline=None)
@given(
    st.from_regex(
        r"\A[0-9]{4}-(0[0-9]|1[0-3])-[0-3][0-9][Tt]([01][0-9]|2[0-5]):[0-6][0-9]:[0-6][0-9](\.[0-9]{1,9})?"
        r"([Zz]|[+-][0-2][0-9]:[0-6][0-9])\Z"
    )
)
def test_datetime_fast_path_equals_the_general_path(text):
    # Every text here matches the decoder's settled_at pattern (bad days and hours included).
    assert datetime_outcome(text) == general_datetime(text)


# Fixed offsets as decoding gives them (whole minutes), and the odd ones a caller could build
# (seconds, microseconds), either side of UTC.
offsets = st.one_of(
    st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda minutes: timezone(timedelta(minutes=minutes))),
    st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)).map(
        timezone
    ),
    st.just(UTC),
)


@settings(max_examples=3000, deadline=None)
@given(st.datetimes(timezones=offsets))
def test_to_us_and_offset_equal_the_timedelta_arithmetic(moment):
    # The reference is the plain arithmetic on aware datetimes that the integer path replaces.
    assert common.to_us(moment) == (moment - common.EPOCH) // timedelta(microseconds=1)
    offset = moment.utcoffset()
    assert common.offset_s(moment) == offset.days * 86400 + offset.seconds
    # Asked twice: the second answer comes from the offset cache.
    assert common.to_us(moment) == (moment - common.EPOCH) // timedelta(microseconds=1)
    assert common.offset_s(moment) == offset.days * 86400 + offset.seconds


@settings(max_examples=300, deadline=None)
@given(st.datetimes(timezones=st.sampled_from([ZoneInfo("Asia/Shanghai"), ZoneInfo("America/New_York")])))
def test_to_us_of_a_zone_equals_the_timedelta_arithmetic(moment):
    assert common.to_us(moment) == (moment - common.EPOCH) // timedelta(microseconds=1)


def strict_rekeyed(key: bytes, raw: bytes):
    """The re-keyed value as the decoder with every pattern reads it: its fields, or the error."""
    text = raw.decode()
    try:
        rec: Any = records._REKEYED_STRICT.decode(text)
    except msgspec.ValidationError as exc:
        return records._from_validation_error(exc, text)
    except msgspec.DecodeError as exc:
        return records.Rejected("json", f"the value is not parseable JSON: {exc}")
    if rec.kind == "reversal" and rec.reverses is None:
        return records._schema_error("reverses", "required when kind is reversal")
    if key != rec.household_id.encode():
        return records.Rejected("key", "the key differs from the value's household_id; they must be equal")
    return msgspec.structs.asdict(rec)


@st.composite
def rekeyed_values(draw):
    ids = st.one_of(
        st.from_regex(r"\A[0-9]{17}[0-9X]\Z"),
        st.text(alphabet="0123456789Xx\u0663 \n", min_size=16, max_size=19),
    )
    fields = {
        "household_id": draw(st.one_of(st.just("H-1"), st.text(max_size=130))),
        "person_id": draw(st.one_of(ids, st.integers())),
        "event_id": draw(st.one_of(st.just("YB-1"), st.text(max_size=3))),
        "region_code": draw(
            st.one_of(st.from_regex(r"\A[0-9]{9}\Z"), st.text(alphabet="0123456789a\u0663\n", max_size=10))
        ),
        "settled_at": draw(st.sampled_from(["2019-01-01T08:00:30+08:00", "2019-01-01T08:00:30", "x"])),
        "kind": draw(st.sampled_from(["settlement", "reversal", "other"])),
        "reverses": draw(st.sampled_from([None, "YB-0", ""])),
        "self_pay_fen": draw(st.integers(-2, 10**6)),
        "service_on": draw(st.sampled_from([None, "2018-12-30", "2018-13-30"])),
        "hardship_holder": draw(st.booleans()),
    }
    names = draw(st.permutations(list(fields)))
    dropped = draw(st.sets(st.sampled_from(names), max_size=2))
    value = {name: fields[name] for name in names if name not in dropped}
    return fields["household_id"].encode() if isinstance(fields["household_id"], str) else b"", value


@settings(max_examples=3000, deadline=None)
@given(rekeyed_values())
def test_rekeyed_decode_equals_the_decoder_with_patterns(case):
    # Document order varies, so the first wrong field is sometimes a patterned one, sometimes not.
    key, value = case
    raw = json.dumps(value).encode()
    got = records.decode_rekeyed(key, raw, 65536)
    expected = strict_rekeyed(key, raw)
    assert (msgspec.structs.asdict(got) if isinstance(got, records.HouseholdSettlement) else got) == expected


@st.composite
def forwarded_settlements(draw):
    """A valid settlement or reversal naming a household, as an input value, in the forms the
    decoder accepts (times with Z, z, offsets, fractions, a leap second; amounts as numbers and
    strings; any household id text)."""
    kind = draw(st.sampled_from(["settlement", "reversal"]))
    value: dict[str, Any] = {
        "event_id": draw(st.text(min_size=1, max_size=20)),
        "person_id": GOOD_ID,
        "region_code": "330183004",
        "settled_at": draw(
            st.sampled_from(
                [
                    "2019-01-01T08:00:30+08:00",
                    "2019-01-01t08:00:30z",
                    "2019-12-31T23:59:60Z",
                    "2019-06-30T12:00:00.123456-05:30",
                    "2019-06-30T12:00:00.5+14:00",
                ]
            )
        ),
        "household_id": draw(st.text(min_size=1, max_size=20)),
        "kind": kind,
    }
    if kind == "reversal":
        value["reverses"] = draw(st.text(min_size=1, max_size=20))
    else:
        value["total_cost"] = "1"
        value["self_pay"] = draw(st.sampled_from(["0", "12.3", "12.30", 7, 7.25, "999999999999999.99"]))
        if draw(st.booleans()):
            value["service_on"] = "2018-12-30"
    return json.dumps(value).encode(), draw(st.booleans())


@settings(max_examples=1000, deadline=None)
@given(forwarded_settlements())
def test_a_forward_decodes_to_itself(case):
    # The backtest hands a forward to the household side as the record itself
    # (``Processor.process_forward``), where the worker decodes its bytes: the same record.
    raw, hardship = case
    rec = records.decode(records.MedicalSettlement, GOOD_ID.encode(), raw, 65536)
    assert isinstance(rec, records.MedicalSettlement)
    forward = household.rekeyed(rec, hardship_holder=hardship)
    assert forward is not None
    decoded = records.decode_rekeyed(forward.household_id.encode(), records.encode(forward), 65536)
    assert decoded == forward
    assert common.to_us(decoded.settled_at) == common.to_us(forward.settled_at)
    assert common.offset_s(decoded.settled_at) == common.offset_s(forward.settled_at)
