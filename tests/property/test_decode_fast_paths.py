"""The decoder's fast paths give exactly what the general paths give (values and error texts)."""

from __future__ import annotations

from decimal import Decimal

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app import records
from stream_app.records import _Bad, _money, _money_general, _money_valid, person_id_valid

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
