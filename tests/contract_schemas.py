"""The JSON Schemas in ``schemas/``, read as a careful validator elsewhere would read them.

Other departments validate their records with these schemas before they send them,
and consumers read our outputs by them; ``records.decode`` is what the worker
actually accepts. The ``tests/unit/test_schema_*.py`` files keep the two in step;
this module is how they read the schemas:
- JSON numbers are parsed as exact decimals (``parse_float=Decimal``, for the
  instances and for the schemas), so ``multipleOf: 0.01`` is exact;
- ``format`` is asserted (``date`` from jsonschema, ``date-time`` by a strict
  RFC 3339 checker below: jsonschema checks ``date-time`` only with an
  optional package that is not installed);
- ``pattern`` follows ECMA-262, the dialect JSON Schema names: ``$`` matches
  only at the very end (Python's ``$`` also matches before a final newline).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators

from stream_app import records
from stream_app.records import InputRecord, Rejected, decode

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"
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
INPUT_TOPICS = CONTRACT_TOPICS[:4]
OUTPUT_TOPICS = CONTRACT_TOPICS[4:]
MEDICAL, DISABILITY, DEATH, ENROLLMENT = INPUT_TOPICS
#: What ``decode`` makes of a valid value on each input topic.
TOPIC_TYPE: dict[str, type[InputRecord]] = {
    MEDICAL: records.MedicalSettlement,
    DISABILITY: records.DisabilityRegistration,
    DEATH: records.DeathRegistration,
    ENROLLMENT: records.SubsidyEnrollment,
}
#: STREAM_APP_MAX_RECORD_BYTES's default.
LIMIT = 65536


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
def ecma(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled as ECMA-262 reads it."""
    # Our patterns use `$` only as "end of input"; ECMA-262 has no match before a final newline.
    return re.compile(re.sub(r"(?<!\\)\$", r"\\Z", pattern))


def _ecma_pattern(
    validator: Any, pattern: str, instance: object, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if isinstance(instance, str) and not ecma(pattern).search(instance):
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


def as_bytes(value: dict[str, Any] | bytes) -> bytes:
    """The value as a producer sends it."""
    return value if isinstance(value, bytes) else json.dumps(value, ensure_ascii=False).encode()


def as_instance(value: dict[str, Any] | bytes) -> Any:
    return json.loads(as_bytes(value), parse_float=Decimal)


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


def decoded(topic: str, value: dict[str, Any] | bytes, key: str | None = None) -> InputRecord | Rejected:
    """What the worker makes of ``value`` on ``topic`` (keyed by its ``person_id`` unless ``key``)."""
    if key is None and isinstance(value, dict) and isinstance(value.get("person_id"), str):
        key = value["person_id"]
    return decode(TOPIC_TYPE[topic], key.encode() if key is not None else None, as_bytes(value), LIMIT)
