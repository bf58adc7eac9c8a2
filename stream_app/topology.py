"""Every topic and every table of the worker, declared once; everything else imports them from here.

A topic is known to the code by its logical name (``MEDICAL_SETTLEMENTS``); its Kafka name is
the contract's default, overridden by ``STREAM_APP_TOPIC_<logical>`` (``settings.py``). Its
value type is the record an input decodes to or the output encoded on it; ``schemas/<default
name>.json`` describes the same values for other systems. An internal topic (a repartition:
the household one, R7) is one more entry with ``Direction.INTERNAL``: the worker writes it,
reads it back, and creates it with the others and the same partition count. Each table has a
compacted changelog topic named after it by Faust, ``<app id>-<table>-changelog``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from stream_app.records import (
    AssistanceWarning,
    DeadLetter,
    DeathRegistration,
    DisabilityRegistration,
    HouseholdSettlement,
    MedicalSettlement,
    PaymentResume,
    PaymentStop,
    SubsidyEnrollment,
)


class Direction(StrEnum):
    INPUT = "in"
    OUTPUT = "out"
    INTERNAL = "internal"


@dataclass(frozen=True)
class TopicSpec:
    logical: str
    default: str  # the contract's Kafka name
    direction: Direction
    value_type: type  # what an input's values decode to, or what an output's are encoded from
    key: str  # what the message key is


@dataclass(frozen=True)
class TableSpec:
    name: str
    key: str
    holds: str


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(
        "MEDICAL_SETTLEMENTS", "medical.settlements.v1", Direction.INPUT, MedicalSettlement, "person_id"
    ),
    TopicSpec(
        "DISABILITY_REGISTRATIONS",
        "disability.registrations.v1",
        Direction.INPUT,
        DisabilityRegistration,
        "person_id",
    ),
    TopicSpec(
        "DEATH_REGISTRATIONS", "death.registrations.v1", Direction.INPUT, DeathRegistration, "person_id"
    ),
    TopicSpec(
        "SUBSIDY_ENROLLMENTS", "subsidy.enrollments.v1", Direction.INPUT, SubsidyEnrollment, "person_id"
    ),
    TopicSpec(
        "ASSISTANCE_WARNINGS",
        "assistance.warnings.v1",
        Direction.OUTPUT,
        AssistanceWarning,
        "person_id (household_id for a household warning)",
    ),
    TopicSpec("PAYMENT_STOPS", "payment.stops.v1", Direction.OUTPUT, PaymentStop, "person_id"),
    TopicSpec("PAYMENT_RESUMES", "payment.resumes.v1", Direction.OUTPUT, PaymentResume, "person_id"),
    TopicSpec("DEADLETTER", "deadletter.v1", Direction.OUTPUT, DeadLetter, "the input record's key"),
    # R7's repartition: members' settlements and reversals re-keyed by household.
    TopicSpec(
        "HOUSEHOLD_SETTLEMENTS",
        "benefit-integrity-household-settlements",
        Direction.INTERNAL,
        HouseholdSettlement,
        "household_id",
    ),
)

#: Logical name -> its declaration.
TOPIC: dict[str, TopicSpec] = {t.logical: t for t in TOPICS}
#: Logical names by direction, in declaration order.
INPUT_TOPICS: tuple[str, ...] = tuple(t.logical for t in TOPICS if t.direction is Direction.INPUT)
OUTPUT_TOPICS: tuple[str, ...] = tuple(t.logical for t in TOPICS if t.direction is Direction.OUTPUT)
INTERNAL_TOPICS: tuple[str, ...] = tuple(t.logical for t in TOPICS if t.direction is Direction.INTERNAL)
#: Logical name -> default Kafka name. ``STREAM_APP_TOPIC_<NAME>`` overrides.
DEFAULT_TOPICS: dict[str, str] = {t.logical: t.default for t in TOPICS}

PERSON_MEDICAL = TableSpec(
    "person_medical", "person_id", "R1's window of settlements (reversed ones flagged), armed tiers"
)
PERSON_STATUS = TableSpec(
    "person_status", "person_id", "death in force, disability certification, enrollment episodes"
)
HOUSEHOLD_MEDICAL = TableSpec(
    "household_medical",
    "household_id",
    "R7's window of the members' settlements (member, R8 flag; reversed ones flagged), armed tiers",
)
TABLES: tuple[TableSpec, ...] = (PERSON_MEDICAL, PERSON_STATUS, HOUSEHOLD_MEDICAL)


def changelog_topic(app_id: str, table: str) -> str:
    """The compacted topic Faust writes a table's changes to (and rebuilds it from)."""
    return f"{app_id}-{table}-changelog"
