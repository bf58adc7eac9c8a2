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


def reversal_value(eid: str, who: str, at: str, reverses: str) -> dict[str, Any]:
    return {
        "event_id": eid,
        "person_id": who,
        "region_code": REGION,
        "settled_at": at,
        "kind": "reversal",
        "reverses": reverses,
    }


def reversal(eid: str, who: str, at: str, reverses: str) -> MedicalSettlement:
    return msgspec.convert(reversal_value(eid, who, at, reverses), MedicalSettlement)


def enrollment_value(
    eid: str, who: str, program: str, status: str, on: str, amount: str = "500"
) -> dict[str, Any]:
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


def withdrawal_value(
    eid: str, who: str, withdraws: str, at: str = "2020-01-01T00:00:00+08:00"
) -> dict[str, Any]:
    return {
        "event_id": eid,
        "person_id": who,
        "region_code": REGION,
        "registered_at": at,
        "status": "withdrawn",
        "withdraws": withdraws,
    }


def withdrawal(
    eid: str, who: str, withdraws: str, at: str = "2020-01-01T00:00:00+08:00"
) -> DeathRegistration:
    return msgspec.convert(withdrawal_value(eid, who, withdraws, at), DeathRegistration)


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


# ---------------------------------------------------------------------------
# One sample of each input, as a producer writes it, for tests that vary one field
# at a time (the schema tests): ``sample_settlement(self_pay=-1)`` changes a field,
# ``sample_certification(level=DROP)`` leaves one out.

SAMPLE_PERSON = with_check_character("33018319670305002")
#: A valid identity number whose check character is X.
CHECK_X_PERSON = next(
    pid for n in range(1000) if (pid := with_check_character(f"3301831980010{n:04d}")).endswith("X")
)
#: A change that removes the field.
DROP: Any = object()


def changed(value: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``value`` with ``changes`` applied (``DROP`` removes a field)."""
    value = dict(value)
    for name, new in changes.items():
        if new is DROP:
            value.pop(name, None)
        else:
            value[name] = new
    return value


def sample_settlement(**changes: Any) -> dict[str, Any]:
    value = settlement_value(
        "YB-2017-0214", SAMPLE_PERSON, "2017-02-14T10:00:00+08:00", "12000.00", total_cost="30000.00"
    )
    return changed(value, changes)


def sample_reversal(**changes: Any) -> dict[str, Any]:
    value = reversal_value("YB-2017-0409-R", SAMPLE_PERSON, "2017-04-10T09:00:00+08:00", "YB-2017-0409")
    return changed(value, changes)


def sample_certification(**changes: Any) -> dict[str, Any]:
    return changed(disability_value("CL-2017-0705", SAMPLE_PERSON, "certified", "2017-07-05", 1), changes)


def sample_death(**changes: Any) -> dict[str, Any]:
    value = death_value(
        "GA-SW-2017-0912", SAMPLE_PERSON, "2017-09-10", registered_at="2017-09-12T10:00:00+08:00"
    )
    return changed(value, changes)


def sample_withdrawal(**changes: Any) -> dict[str, Any]:
    value = withdrawal_value(
        "GA-SW-2017-1103-W", SAMPLE_PERSON, "GA-SW-2017-0912", "2017-11-03T09:00:00+08:00"
    )
    return changed(value, changes)


def sample_enrollment(**changes: Any) -> dict[str, Any]:
    value = enrollment_value("MZ-DB-2017-0811", SAMPLE_PERSON, "dibao", "active", "2017-08-01", "1836")
    return changed(value, changes)
