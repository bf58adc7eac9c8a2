"""Records for tests, built through the real decoder types (so they are valid inputs)."""

from __future__ import annotations

import itertools
from typing import Any

import msgspec

from stream_app.records import (
    DeathRegistration,
    DisabilityRegistration,
    MedicalSettlement,
    SubsidyEnrollment,
    with_check_character,
)

REGION = "330183004"
_seq = itertools.count(1)


def person(n: int) -> str:
    """A valid identity number, different for each n."""
    return with_check_character(f"330183{19500101 + n % 10000:08d}{n % 1000:03d}")


def settlement_value(eid: str, who: str, at: str, self_pay: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": eid,
        "person_id": who,
        "region_code": REGION,
        "settled_at": at,
        "total_cost": str(extra.pop("total_cost", self_pay)),
        "self_pay": self_pay,
        **extra,
    }


def settlement(eid: str, who: str, at: str, self_pay: str, **extra: Any) -> MedicalSettlement:
    return msgspec.convert(settlement_value(eid, who, at, self_pay, **extra), MedicalSettlement)


def reversal(eid: str, who: str, at: str, reverses: str) -> MedicalSettlement:
    value = {
        "event_id": eid,
        "person_id": who,
        "region_code": REGION,
        "settled_at": at,
        "kind": "reversal",
        "reverses": reverses,
    }
    return msgspec.convert(value, MedicalSettlement)


def enrollment_value(eid: str, who: str, program: str, status: str, on: str, amount: str = "500") -> dict:
    return {
        "event_id": eid,
        "person_id": who,
        "region_code": REGION,
        "program": program,
        "status": status,
        "monthly_amount": amount,
        "effective_on": on,
    }


def enrollment(
    eid: str, who: str, program: str, status: str, on: str, amount: str = "500"
) -> SubsidyEnrollment:
    return msgspec.convert(enrollment_value(eid, who, program, status, on, amount), SubsidyEnrollment)


def death_value(eid: str, who: str, died_on: str, **extra: Any) -> dict[str, Any]:
    value = {
        "event_id": eid,
        "person_id": who,
        "region_code": REGION,
        "died_on": died_on,
        "registered_at": f"{died_on}T12:00:00+08:00",
    }
    value.update(extra)
    return value


def death(eid: str, who: str, died_on: str, registered_at: str | None = None) -> DeathRegistration:
    extra = {"registered_at": registered_at} if registered_at else {}
    return msgspec.convert(death_value(eid, who, died_on, **extra), DeathRegistration)


def withdrawal(
    eid: str, who: str, withdraws: str, at: str = "2020-01-01T00:00:00+08:00"
) -> DeathRegistration:
    value = {
        "event_id": eid,
        "person_id": who,
        "region_code": REGION,
        "registered_at": at,
        "status": "withdrawn",
        "withdraws": withdraws,
    }
    return msgspec.convert(value, DeathRegistration)


def disability_value(eid: str, who: str, status: str, on: str, level: int | None = None) -> dict[str, Any]:
    value: dict[str, Any] = {
        "event_id": eid,
        "person_id": who,
        "region_code": REGION,
        "status": status,
        "effective_on": on,
    }
    if level is not None:
        value["level"] = level
    return value


def disability(eid: str, who: str, status: str, on: str, level: int | None = None) -> DisabilityRegistration:
    return msgspec.convert(disability_value(eid, who, status, on, level), DisabilityRegistration)
