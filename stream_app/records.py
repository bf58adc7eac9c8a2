"""Typed records at the edge: decode and validate input once, describe every output.

Input values are decoded by msgspec straight into frozen structs (one pass,
no intermediate dict). What JSON Schema cannot say of a field (the identity
number's check character, money exactness, fields required by ``kind`` or
``status``) is checked right after. Anything wrong becomes a ``Rejected``
with the contract's ``error_class`` and a sentence naming the field; rules
never see bytes, dicts or invalid records.

The JSON Schemas in ``schemas/`` describe the same values for other
departments' systems; ``tests/unit/test_schema_*.py`` keep the two in step.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar, get_args

import msgspec
from msgspec import Meta, Struct

EventId = Annotated[str, Meta(min_length=1, max_length=128)]
# \Z, not $: msgspec matches with Python's re, where $ also matches before a final newline.
PersonId = Annotated[str, Meta(pattern=r"^[0-9]{17}[0-9X]\Z")]
RegionCode = Annotated[str, Meta(pattern=r"^[0-9]{9}\Z")]
Program = Annotated[str, Meta(pattern=r"^[a-z0-9_]{1,64}\Z")]
DateTimeText = Annotated[
    str,
    Meta(
        pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})\Z"
    ),
]
Level = Annotated[int, Meta(ge=1, le=4)]

#: Largest amount accepted, in yuan. State keeps fen in 64-bit integers, so an
#: unbounded amount could not be stored; 10^15 yuan is far above any bill.
MAX_MONEY = Decimal(10) ** 15

# ---------------------------------------------------------------------------
# Input values, as the rules see them (validated, typed, exact).


class MedicalSettlement(Struct, frozen=True, kw_only=True):
    """A settlement or reversal. ``total_cost`` is validated by ``decode`` but not kept
    (``None``): no rule reads it."""

    event_id: str
    person_id: str
    region_code: str
    settled_at: datetime
    household_id: str | None = None
    service_on: date | None = None
    total_cost: Decimal | None = None
    self_pay: Decimal | None = None
    kind: Literal["settlement", "reversal"] = "settlement"
    reverses: str | None = None


class DisabilityRegistration(Struct, frozen=True, kw_only=True):
    event_id: str
    person_id: str
    region_code: str
    status: Literal["certified", "revoked", "expired"]
    effective_on: date
    level: int | None = None
    category: str | None = None


class DeathRegistration(Struct, frozen=True, kw_only=True):
    event_id: str
    person_id: str
    region_code: str
    registered_at: datetime
    died_on: date | None = None
    status: Literal["registered", "withdrawn"] = "registered"
    withdraws: str | None = None


class SubsidyEnrollment(Struct, frozen=True, kw_only=True):
    event_id: str
    person_id: str
    region_code: str
    program: str
    status: Literal["active", "ended"]
    monthly_amount: Decimal
    effective_on: date


InputRecord = MedicalSettlement | DisabilityRegistration | DeathRegistration | SubsidyEnrollment
StatusRecord = DisabilityRegistration | DeathRegistration | SubsidyEnrollment

# ---------------------------------------------------------------------------
# Input values as they arrive. msgspec checks types, ranges and patterns in the
# parse; money, datetimes and fields that only some kinds need stay raw here and
# are checked by ``_finish`` (a reversal's ``self_pay`` is ignored, not validated).

_RAW_ABSENT = msgspec.Raw()


class _SettlementIn(Struct, frozen=True, kw_only=True):
    event_id: EventId
    person_id: PersonId
    region_code: RegionCode
    settled_at: DateTimeText
    household_id: str | None = None
    service_on: msgspec.Raw = _RAW_ABSENT
    total_cost: msgspec.Raw = _RAW_ABSENT
    self_pay: msgspec.Raw = _RAW_ABSENT
    kind: Literal["settlement", "reversal"] = "settlement"
    reverses: EventId | None = None


class _DisabilityIn(Struct, frozen=True, kw_only=True):
    event_id: EventId
    person_id: PersonId
    region_code: RegionCode
    status: Literal["certified", "revoked", "expired"]
    effective_on: date
    level: Level | None = None
    category: str | None = None


class _DeathIn(Struct, frozen=True, kw_only=True):
    event_id: EventId
    person_id: PersonId
    region_code: RegionCode
    registered_at: DateTimeText
    died_on: msgspec.Raw = _RAW_ABSENT
    status: Literal["registered", "withdrawn"] = "registered"
    withdraws: EventId | None = None


class _EnrollmentIn(Struct, frozen=True, kw_only=True):
    event_id: EventId
    person_id: PersonId
    region_code: RegionCode
    program: Program
    status: Literal["active", "ended"]
    monthly_amount: msgspec.Raw
    effective_on: date


class Rejected(Struct, frozen=True):
    """Why a record cannot be processed: one of the contract's error classes and a sentence."""

    error_class: Literal["encoding", "json", "schema", "key", "too_large", "internal"]
    error: str


# ---------------------------------------------------------------------------
# Output values. ``emitted_at`` is set by whoever sends the record (wall clock).


class _Output(Struct, frozen=True, kw_only=True, omit_defaults=True):
    pass


class AssistanceWarning(_Output, frozen=True, kw_only=True, omit_defaults=True):
    warning_id: str
    rule: str
    person_id: str
    region_code: str
    household_id: str | None = None
    caused_by: str
    occurred_at: datetime
    emitted_at: str = ""
    evidence: tuple[str, ...]


class SelfPayWarning(AssistanceWarning, frozen=True, kw_only=True, omit_defaults=True):
    """Rules MEDICAL_SELF_PAY (and, keyed by household, HOUSEHOLD_SELF_PAY)."""

    tier: str
    rolling_self_pay: str
    window_start: date
    window_end: date
    suggested_amount: str
    hardship_holder: bool
    members: tuple[str, ...] | None = None


class NursingEligibleWarning(AssistanceWarning, frozen=True, kw_only=True, omit_defaults=True):
    level: int


class PostDeathWarning(AssistanceWarning, frozen=True, kw_only=True, omit_defaults=True):
    """Rule POST_DEATH_ACTIVITY (R4): care billed after the death in force plus the grace period."""

    died_on: date
    service_on: date
    self_pay: str


class DuplicateAssistanceWarning(AssistanceWarning, frozen=True, kw_only=True, omit_defaults=True):
    programs: tuple[str, str]


class PaymentStop(_Output, frozen=True, kw_only=True, omit_defaults=True):
    stop_id: str
    person_id: str
    region_code: str
    program: str
    reason: str
    effective_on: date
    caused_by: str
    emitted_at: str = ""
    #: R9, on the death reasons only: months paid after the death, and what they came to.
    overpaid_months: int | None = None
    overpaid_amount: str | None = None


class PaymentResume(_Output, frozen=True, kw_only=True, omit_defaults=True):
    resume_id: str
    stop_id: str
    person_id: str
    region_code: str
    program: str
    reason: str
    effective_on: date
    caused_by: str
    emitted_at: str = ""


#: The dead letters' ``error_class`` values (the contract's list).
ERROR_CLASSES = ("encoding", "json", "schema", "key", "too_large", "internal")


class DeadLetter(_Output, frozen=True, kw_only=True, omit_defaults=True):
    topic: str
    partition: int
    offset: int
    key: str | None
    key_encoding: Literal["base64"] | None = None
    value: str | None
    value_encoding: Literal["base64"] | None = None
    value_truncated: bool = False
    error_class: str
    error: str
    received_at: str = ""


Output = AssistanceWarning | PaymentStop | PaymentResume | DeadLetter


# ---------------------------------------------------------------------------
# The internal topic's value: what the person side sends the household side (R7).

FenAmount = Annotated[int, Meta(ge=0)]
AwareDateTime = Annotated[datetime, Meta(tz=True)]


class HouseholdSettlement(Struct, frozen=True, kw_only=True):
    """A member's settlement or reversal re-keyed by household: the internal topic's value
    (``schemas/benefit-integrity-household-settlements.json``), keyed by ``household_id``.

    ``self_pay_fen`` and ``service_on`` are those of a settlement (0 and None on a reversal,
    whose amounts are ignored as in R1); ``hardship_holder`` is the member's R8 flag when the
    person side processed the settlement. Built by ``stream_app.rules.household.rekeyed``.
    """

    household_id: EventId
    # A PersonId and a RegionCode, checked by ``decode_rekeyed`` with string methods: msgspec
    # would run their patterns through Python's re, two thirds of the decode's time.
    person_id: str
    event_id: EventId
    region_code: str
    settled_at: AwareDateTime
    kind: Literal["settlement", "reversal"] = "settlement"
    reverses: EventId | None = None
    self_pay_fen: FenAmount = 0
    service_on: date | None = None
    hardship_holder: bool = False


#: A value the worker sends: an output of the contract, or a record for its own internal topic.
Sent = Output | HouseholdSettlement

# ---------------------------------------------------------------------------
# Decoding

_WIRE: dict[type[InputRecord], type[Struct]] = {
    MedicalSettlement: _SettlementIn,
    DisabilityRegistration: _DisabilityIn,
    DeathRegistration: _DeathIn,
    SubsidyEnrollment: _EnrollmentIn,
}
_DECODERS = {record_type: msgspec.json.Decoder(wire) for record_type, wire in _WIRE.items()}


# The same shapes without the regex patterns, which msgspec runs through Python's re (about
# 0.4 us apiece); the patterned fields are checked after the parse by string methods and one
# compiled regex instead. Anything the lean parse or a check refuses is parsed again by the
# strict decoder above, which raises exactly the error it always did (in document order).
_DATETIME_TEXT = re.compile(get_args(DateTimeText)[1].pattern).search
_PROGRAM = re.compile(get_args(Program)[1].pattern).search


def _ids_ok(wire: Any) -> bool:
    """person_id ^[0-9]{17}[0-9X]\\Z with a valid check character, and region_code ^[0-9]{9}\\Z
    (isdigit on ASCII is 0-9).

    The check character is verified here too, so that ``_finish`` need not verify it again for a
    lean value; a wrong one sends the value to the strict decoder, and ``_finish`` then refuses
    it with the same error as ever.
    """
    p, r = wire.person_id, wire.region_code
    return (
        len(p) == 18
        and p.isascii()
        and p[:17].isdigit()
        and len(r) == 9
        and r.isascii()
        and r.isdigit()
        # 2 x (the 17 digits read in base 13), mod 11: see ``person_id_valid``.
        and _ID_CHECK[2 * int(p[:17], 13) % 11] == p[17]
    )


def _settlement_ok(w: Any) -> bool:
    """``_ids_ok`` and the settled_at pattern, in one call (four records in five are settlements)."""
    p, r = w.person_id, w.region_code
    return (
        len(p) == 18
        and p.isascii()
        and p[:17].isdigit()
        and len(r) == 9
        and r.isascii()
        and r.isdigit()
        and _ID_CHECK[2 * int(p[:17], 13) % 11] == p[17]
        and _DATETIME_TEXT(w.settled_at) is not None
    )


#: Each wire struct's patterned fields, and the check that stands for their patterns.
_LEAN_CHECKS = {
    _SettlementIn: (("person_id", "region_code", "settled_at"), _settlement_ok),
    _DisabilityIn: (("person_id", "region_code"), _ids_ok),
    _DeathIn: (
        ("person_id", "region_code", "registered_at"),
        lambda w: _ids_ok(w) and _DATETIME_TEXT(w.registered_at) is not None,
    ),
    _EnrollmentIn: (
        ("person_id", "region_code", "program"),
        lambda w: _ids_ok(w) and _PROGRAM(w.program) is not None,
    ),
}
_PATTERNED = (PersonId, RegionCode, DateTimeText, Program)
#: Optional dates kept raw by the strict decoder (to word their errors) but typed in the lean one.
_LEAN_DATES = {(_SettlementIn, "service_on")}


def _lean(wire: type[Struct]) -> tuple[msgspec.json.Decoder, Any]:
    names, check = _LEAN_CHECKS[wire]
    fields: list[Any] = []
    for info in msgspec.structs.fields(wire):
        patterned = info.type in _PATTERNED
        assert patterned == (info.name in names), f"{wire.__name__}.{info.name}: lean check out of step"
        kind = str if patterned else info.type
        default = info.default
        if (wire, info.name) in _LEAN_DATES:  # parsed by msgspec in C; a bad one takes the strict path
            kind, default = date | None, None
        fields.append((info.name, kind) if info.required else (info.name, kind, default))
    lean = msgspec.defstruct(f"{wire.__name__}Lean", fields, frozen=True, kw_only=True)
    return msgspec.json.Decoder(lean), check


_LEAN = {record_type: _lean(wire) for record_type, wire in _WIRE.items()}
_LEAN_TYPES = frozenset(decoder.type for decoder, _ in _LEAN.values())


def _parse(record_type: type[InputRecord], text: str) -> Struct:
    """The wire value: by the lean decoder and checks when all is well, else by the strict one."""
    decoder, check = _LEAN[record_type]
    try:
        wire = decoder.decode(text)
    except (msgspec.DecodeError, RecursionError):
        return _DECODERS[record_type].decode(text)
    return wire if check(wire) else _DECODERS[record_type].decode(text)


_DATE = msgspec.json.Decoder(date)
_MONEY_TEXT = re.compile(r"[0-9]+(\.[0-9]{1,2})?\Z")
_JSON_NUMBER = re.compile(rb"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?\Z")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
# Money in its common forms, taken without the general checks: a string of digits with at
# most 2 decimals (group 1), or a plain JSON number (no exponent, no sign; group 2). At most 15
# integer digits, so never above MAX_MONEY. Anything else takes the general path (same checks,
# same errors).
_FAST_MONEY = re.compile(
    rb'"([0-9]{1,15}(?:\.[0-9]{1,2})?)"|((?:0|[1-9][0-9]{0,14})(?:\.[0-9]{1,2})?)'
).fullmatch

#: What each field should look like, appended to schema errors so a person can fix the record.
_FIELD_HINTS = {
    "event_id": "a string of 1-128 characters, unique per source record",
    "person_id": "an 18-character resident identity number: 17 digits and a check digit or X",
    "region_code": "the 9-digit town/street code, e.g. 330183004",
    "household_id": "a string",
    "settled_at": "an RFC 3339 datetime with offset, e.g. 2017-03-14T10:21:00+08:00",
    "registered_at": "an RFC 3339 datetime with offset, e.g. 2017-03-14T10:21:00+08:00",
    "service_on": "a date YYYY-MM-DD",
    "effective_on": "a date YYYY-MM-DD",
    "died_on": "a date YYYY-MM-DD",
    "total_cost": "yuan as a JSON number or decimal string, at most 2 decimals, not negative",
    "self_pay": "yuan as a JSON number or decimal string, at most 2 decimals, not negative",
    "monthly_amount": "yuan as a JSON number or decimal string, at most 2 decimals, not negative",
    "kind": "'settlement' or 'reversal'",
    "reverses": "the event_id of the settlement this reversal cancels",
    "withdraws": "the event_id of the death registration this record withdraws",
    "status": "one of the statuses the contract lists for this topic",
    "level": "a whole number 1-4 (1 is most severe)",
    "program": "1-64 characters of a-z, 0-9 and _, e.g. dibao",
}
_PATH = re.compile(r" - at `\$\.?([^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `([^`]+)`")


def person_id_valid(person_id: str) -> bool:
    """ISO 7064 MOD 11-2 check character of a PRC resident identity number."""
    if len(person_id) != 18 or not person_id[:17].isdigit():
        return False
    if person_id.isascii():
        # The weights are 2^17 ... 2^1 mod 11, and 13 = 2 (mod 11): so the weighted sum is
        # 2 x (the 17 digits read in base 13), mod 11. One int() in C instead of a loop.
        total = 2 * int(person_id[:17], 13)
    else:  # other Unicode digits (never from decode, whose pattern allows only 0-9)
        total = sum(int(d) * w for d, w in zip(person_id[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == person_id[17]


def with_check_character(first17: str) -> str:
    """Complete 17 digits into a valid identity number (for demos and tests)."""
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return first17 + _ID_CHECK[total % 11]


def _schema_error(field: str, problem: str) -> Rejected:
    hint = _FIELD_HINTS.get(field.split(".")[0].split("[")[0])
    text = f"field `{field}`: {problem}"
    return Rejected("schema", f"{text}; expected {hint}" if hint else text)


def _from_validation_error(exc: msgspec.ValidationError, raw: str) -> Rejected:
    message = str(exc)
    missing = _MISSING.match(message)
    if missing:
        field = missing.group(1)
        return _schema_error(field, "required but missing")
    at = _PATH.search(message)
    if at is None:
        # msgspec reports the root itself: the JSON parsed but is not an object. Name
        # its kind from the first character (decoding it again could recurse deeply).
        first = raw.lstrip()[:1]
        kind = {"[": "array", '"': "string", "t": "boolean", "f": "boolean", "n": "null"}.get(first, "number")
        return Rejected("json", f"the value must be a JSON object, got a JSON {kind}")
    return _schema_error(at.group(1), message[: at.start()])


class _Bad(Exception):
    """A field failed a check after parsing; carries the dead letter's reason."""

    def __init__(self, rejected: Rejected) -> None:
        self.rejected = rejected


def _money(raw: msgspec.Raw, field: str) -> Decimal:
    """Yuan from a JSON number or a decimal string: exact, at most 2 decimals, not negative."""
    fast = _FAST_MONEY(raw)  # on the raw buffer: no copy
    if fast is not None:  # already valid: skip the general checks
        return Decimal((fast.group(1) or fast.group(2)).decode())
    return _money_general(bytes(raw), field)


def _money_valid(raw: msgspec.Raw, field: str) -> None:
    """Validate an amount no rule reads, exactly as ``_money`` does, without building it."""
    if _FAST_MONEY(raw) is None:
        _money_general(bytes(raw), field)


def _money_general(token: bytes, field: str) -> Decimal:
    if not token or token == b"null":
        raise _Bad(_schema_error(field, "required but missing"))
    if token.startswith(b'"'):
        text = msgspec.json.decode(token)
        if text.startswith("-"):
            raise _Bad(_schema_error(field, "must not be negative"))
        if not _MONEY_TEXT.match(text):
            raise _Bad(_schema_error(field, f"{text!r} is not a decimal with at most 2 fractional digits"))
        value = Decimal(text)
    elif _JSON_NUMBER.match(token):
        value = Decimal(token.decode())
        if value < 0:
            raise _Bad(_schema_error(field, "must not be negative"))
        if value * 100 != (value * 100).to_integral_value():
            raise _Bad(_schema_error(field, "has more than 2 fractional digits"))
    else:
        raise _Bad(_schema_error(field, f"got {token[:40].decode(errors='replace')}, not an amount"))
    if value > MAX_MONEY:
        raise _Bad(_schema_error(field, f"must not exceed {MAX_MONEY:f} yuan"))
    return value


def _datetime(text: str, field: str) -> datetime:
    if text[10:11] == "T" and text[17:19] != "60" and text[-1:] != "z":
        # The usual form: no leap second, no lower case. (Only values that matched the pattern
        # come here; the general path below words the error when fromisoformat refuses one.)
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass
    leap = text[17:19] == "60"  # RFC 3339 allows a leap second; count it as the next second
    try:
        text = text.upper()  # RFC 3339 allows t and z; fromisoformat does not
        moment = datetime.fromisoformat(text[:17] + "59" + text[19:] if leap else text)
    except ValueError:
        raise _Bad(_schema_error(field, f"{text!r} is not a valid datetime")) from None
    return moment + timedelta(seconds=1) if leap else moment


def _date(raw: msgspec.Raw, field: str, required: bool) -> date | None:
    token = bytes(raw)
    if not token or token == b"null":
        if required:
            raise _Bad(_schema_error(field, "required but missing"))
        return None
    try:
        return _DATE.decode(token)
    except msgspec.ValidationError as exc:
        raise _Bad(_schema_error(field, str(exc).split(" - at ")[0])) from None


def _finish(record_type: type[InputRecord], wire: Any) -> InputRecord:
    """Typed record from the parsed value; raise ``_Bad`` naming the field that is wrong."""
    # A lean value's check character was verified with its pattern (``_ids_ok``).
    if type(wire) not in _LEAN_TYPES and not person_id_valid(wire.person_id):
        raise _Bad(_schema_error("person_id", "check character does not satisfy ISO 7064 MOD 11-2"))
    if record_type is MedicalSettlement:
        settled_at = _datetime(wire.settled_at, "settled_at")
        if wire.kind == "reversal":
            if wire.reverses is None:
                raise _Bad(_schema_error("reverses", "required when kind is reversal"))
            # A reversal's amounts and service date are ignored, so not validated either.
            return MedicalSettlement(
                event_id=wire.event_id,
                person_id=wire.person_id,
                region_code=wire.region_code,
                settled_at=settled_at,
                household_id=wire.household_id or None,  # "" names no household
                kind="reversal",
                reverses=wire.reverses,
            )
        service_on = wire.service_on
        if type(service_on) is msgspec.Raw:  # the strict decoder's (a lean value has a date or None)
            service_on = _date(service_on, "service_on", required=False)
        _money_valid(wire.total_cost, "total_cost")  # checked in field order, not kept
        return MedicalSettlement(
            event_id=wire.event_id,
            person_id=wire.person_id,
            region_code=wire.region_code,
            settled_at=settled_at,
            household_id=wire.household_id or None,
            service_on=service_on,
            self_pay=_money(wire.self_pay, "self_pay"),
            reverses=wire.reverses,
        )
    if record_type is SubsidyEnrollment:
        return SubsidyEnrollment(
            event_id=wire.event_id,
            person_id=wire.person_id,
            region_code=wire.region_code,
            program=wire.program,
            status=wire.status,
            monthly_amount=_money(wire.monthly_amount, "monthly_amount"),
            effective_on=wire.effective_on,
        )
    if record_type is DisabilityRegistration:
        if wire.status == "certified" and wire.level is None:
            raise _Bad(_schema_error("level", "required when status is certified"))
        return DisabilityRegistration(
            event_id=wire.event_id,
            person_id=wire.person_id,
            region_code=wire.region_code,
            status=wire.status,
            effective_on=wire.effective_on,
            level=wire.level,
            category=wire.category,
        )
    registered_at = _datetime(wire.registered_at, "registered_at")
    if wire.status == "withdrawn":
        if wire.withdraws is None:
            raise _Bad(_schema_error("withdraws", "required when status is withdrawn"))
        died_on = None  # ignored on a withdrawal
    else:
        died_on = _date(wire.died_on, "died_on", required=True)
    return DeathRegistration(
        event_id=wire.event_id,
        person_id=wire.person_id,
        region_code=wire.region_code,
        registered_at=registered_at,
        died_on=died_on,
        status=wire.status,
        withdraws=wire.withdraws,
    )


T = TypeVar("T")


def _decoded(value: bytes | None, max_bytes: int, parse: Callable[..., T], *args: Any) -> T | Rejected:
    """``parse(*args, text)`` of a record's value, or why it goes to the dead letters: the
    checks every topic's values share (present, within the size limit, UTF-8, JSON of the
    schema), the same reasons whatever the topic."""
    if value is None:
        return Rejected("json", "the value is empty (null); expected a JSON object")
    if len(value) > max_bytes:
        return Rejected("too_large", f"the value has {len(value)} bytes, more than the limit of {max_bytes}")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejected("encoding", f"the value is not UTF-8 (bad byte at position {exc.start})")
    try:
        return parse(*args, text)
    except msgspec.ValidationError as exc:
        return _from_validation_error(exc, text)
    except msgspec.DecodeError as exc:
        return Rejected("json", f"the value is not parseable JSON: {exc}")
    except RecursionError:
        return Rejected("json", "the value is nested too deeply to parse")
    except _Bad as bad:
        return bad.rejected


def _parse_input(record_type: type[InputRecord], text: str) -> InputRecord:
    return _finish(record_type, _parse(record_type, text))


def decode(
    record_type: type[InputRecord], key: bytes | None, value: bytes | None, max_bytes: int
) -> InputRecord | Rejected:
    """Decode one Kafka record of an input topic, or say why it goes to the dead letters."""
    record = _decoded(value, max_bytes, _parse_input, record_type)
    if isinstance(record, Rejected):
        return record
    if key is None:
        return Rejected("key", "the record has no key; the key must be the value's person_id")
    if key != record.person_id.encode():
        return Rejected("key", "the key differs from the value's person_id; they must be equal")
    return record


_REKEYED = msgspec.json.Decoder(HouseholdSettlement)
#: The same shape with the patterns of person_id and region_code, only to raise its error, in
#: document order, when a value fails any check (``decode_rekeyed``).
_REKEYED_STRICT = msgspec.json.Decoder(
    msgspec.defstruct(
        "HouseholdSettlementStrict",
        [
            (f.name, {"person_id": PersonId, "region_code": RegionCode}.get(f.name, f.type))
            if f.required
            else (f.name, f.type, f.default)
            for f in msgspec.structs.fields(HouseholdSettlement)
        ],
        frozen=True,
        kw_only=True,
    )
)


def _rekeyed_ids_ok(rec: HouseholdSettlement) -> bool:
    """person_id ^[0-9]{17}[0-9X]\\Z and region_code ^[0-9]{9}\\Z (isdigit on ASCII is 0-9)."""
    p, r = rec.person_id, rec.region_code
    return (
        len(p) == 18
        and p.isascii()
        and p[:17].isdigit()
        and (p[17].isdigit() or p[17] == "X")
        and len(r) == 9
        and r.isascii()
        and r.isdigit()
    )


def _parse_rekeyed(text: str) -> HouseholdSettlement:
    """The re-keyed value. A value refused by the decoder or the id checks is decoded again
    with the patterns, which raises the error the first wrong field gives, as ever."""
    try:
        rec = _REKEYED.decode(text)
    except (msgspec.DecodeError, RecursionError):
        _REKEYED_STRICT.decode(text)
        raise  # not reached: the strict decoder refuses all the lean one does
    if not _rekeyed_ids_ok(rec):
        _REKEYED_STRICT.decode(text)  # raises, naming the field
    return rec


def decode_rekeyed(key: bytes | None, value: bytes | None, max_bytes: int) -> HouseholdSettlement | Rejected:
    """Decode one record of the internal household topic, or say why it goes to the dead letters.

    The worker writes these itself, so a bad one means a defect or a foreign producer; it is
    refused with the same error classes as an input (the key must be the ``household_id``).
    """
    record = _decoded(value, max_bytes, _parse_rekeyed)
    if isinstance(record, Rejected):
        return record
    if record.kind == "reversal" and record.reverses is None:
        return _schema_error("reverses", "required when kind is reversal")
    if key is None:
        return Rejected("key", "the record has no key; the key must be the value's household_id")
    if key != record.household_id.encode():
        return Rejected("key", "the key differs from the value's household_id; they must be equal")
    return record


# ---------------------------------------------------------------------------
# Encoding

_ENCODER = msgspec.json.Encoder()


def encode(output: Sent) -> bytes:
    return _ENCODER.encode(output)


def money(fen: int) -> str:
    """Money out: a decimal string with exactly 2 fractional digits."""
    return f"{fen // 100}.{fen % 100:02d}"


def fen(amount: Decimal) -> int:
    """Money in: yuan (validated to whole fen) as integer fen."""
    return int(amount * 100)
