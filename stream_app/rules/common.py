"""What every rule shares: the step result, deterministic ids, calendar helpers."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from hashlib import sha1
from typing import Generic, TypeVar

from msgspec import Struct

from stream_app.records import Output

S = TypeVar("S")

#: Namespace of every output id (uuid5); changing it would change every id ever sent.
_ID_NAMESPACE = uuid.UUID("6f1c7a52-3b1e-5d1a-9c55-0b6a1c2f9e10")
_ID_PREFIX = _ID_NAMESPACE.bytes

#: Date-only records (death, disability, enrollment) happen at midnight China Standard Time.
CST = timezone(timedelta(hours=8))
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)


class Step(Struct, Generic[S], frozen=True):
    """A rule's answer: the new state (None: forget the key), what to emit, and what happened.

    ``outcome`` names what the record did (``counted``, ``duplicate``, ``unknown_reversal``...);
    the worker counts it in a metric. (A msgspec struct: built per record, five times cheaper
    than a frozen dataclass.)
    """

    state: S | None
    outputs: tuple[Output, ...] = ()
    outcome: str = "applied"


def output_id(*parts: str) -> str:
    """An id derived only from the records (and rule) behind an output: stable on replay.

    ``str(uuid.uuid5(_ID_NAMESPACE, "|".join(parts)))``, computed without building a UUID
    object (a third of the time; the status rule computes one per stop condition it checks).
    """
    digest = sha1(_ID_PREFIX + "|".join(parts).encode()).digest()
    # Version 5 in the top nibble of byte 6, the RFC 4122 variant in the top bits of byte 8.
    h = (
        digest[:6] + bytes(((digest[6] & 0x0F) | 0x50, digest[7], (digest[8] & 0x3F) | 0x80)) + digest[9:16]
    ).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


#: A fixed UTC offset (``datetime.timezone``, as ``fromisoformat`` gives) -> its whole seconds.
#: Few distinct offsets occur (+08:00 nearly always); bounded all the same.
_OFFSET_S: dict[tzinfo, int] = {}
_OFFSET_CACHE_LIMIT = 256
_EPOCH_ORDINAL = EPOCH.toordinal()


def offset_s(moment: datetime) -> int:
    """The UTC offset of an aware datetime in whole seconds (any sub-second part dropped).

    Looked up by its ``timezone`` (a dict hit) rather than asked with ``utcoffset()`` and
    computed from the timedelta, for every settlement of the R1 and R7 windows.
    """
    tz = moment.tzinfo
    if type(tz) is timezone:
        cached = _OFFSET_S.get(tz)
        if cached is not None:
            return cached
    offset = moment.utcoffset()
    seconds = offset.days * 86400 + offset.seconds  # type: ignore[union-attr]  # aware
    if type(tz) is timezone and not offset.microseconds and len(_OFFSET_S) < _OFFSET_CACHE_LIMIT:  # type: ignore[union-attr]
        _OFFSET_S[tz] = seconds
    return seconds


def to_us(moment: datetime) -> int:
    """Exact microseconds since the epoch (no float rounding).

    For a fixed whole-second offset (every decoded record's), from the calendar fields in
    integer arithmetic: aware-datetime subtraction and timedelta floor division cost twice as
    much. Anything else (a ``zoneinfo`` zone, a sub-second offset) by that subtraction.
    """
    tz = moment.tzinfo
    if type(tz) is timezone:
        offset = _OFFSET_S.get(tz)
        if offset is None:
            offset = offset_s(moment)  # caches a whole-second offset
            if tz not in _OFFSET_S:
                return (moment - EPOCH) // US
        return (
            (moment.toordinal() - _EPOCH_ORDINAL) * 86400
            + moment.hour * 3600
            + moment.minute * 60
            + moment.second
            - offset
        ) * 1_000_000 + moment.microsecond
    return (moment - EPOCH) // US


def from_us(us: int, offset_s: int) -> datetime:
    return (EPOCH + us * US).astimezone(timezone(timedelta(seconds=offset_s)))


def start_of_day_cst(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=CST)


def first_of_next_month(day: date) -> date:
    return date(day.year + 1, 1, 1) if day.month == 12 else date(day.year, day.month + 1, 1)
