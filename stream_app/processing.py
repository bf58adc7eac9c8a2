"""One record in, outputs out: decode, look up state, call the rule, write state.

This is the whole per-record path, with no Faust import: the agents call it on
tables, ``stream-app backtest`` and the demo's expectations call it on dicts, so
both give the same outputs with the same ids. Emitting (and the wall-clock
``emitted_at``) is the caller's job.
"""

from __future__ import annotations

import base64
from enum import StrEnum
from typing import Any, Protocol

from msgspec import Struct
from msgspec.structs import replace

from stream_app.records import (
    DeadLetter,
    DeathRegistration,
    InputRecord,
    MedicalSettlement,
    Output,
    PaymentResume,
    PaymentStop,
    Rejected,
    SelfPayWarning,
    StatusRecord,
    decode,
)
from stream_app.rules import medical, post_death, status
from stream_app.rules.common import start_of_day_cst, to_us
from stream_app.rules.medical import MedicalState
from stream_app.rules.status import StatusState
from stream_app.settings import RuleParams, Settings
from stream_app.state import DictState as DictState  # re-exported: tests and tools build on it
from stream_app.state import StateAccess
from stream_app.topology import INPUT_TOPICS, TOPIC

#: Logical input topic -> the record its values decode to (declared in topology.py).
INPUT_TYPES: dict[str, type[InputRecord]] = {logical: TOPIC[logical].value_type for logical in INPUT_TOPICS}
STATUS_TOPICS = ("DISABILITY_REGISTRATIONS", "DEATH_REGISTRATIONS", "SUBSIDY_ENROLLMENTS")


class Outcome(StrEnum):
    """What a record did. The rules name it as text (they stay free of this module); the
    processor reads that text into this type once, and the metrics read this type."""

    # settlements (R1)
    COUNTED = "counted"
    REVERSED = "reversed"
    DUPLICATE = "duplicate"  # redelivered: counted once (any input kind)
    UNKNOWN_REVERSAL = "unknown_reversal"
    OUTSIDE_WINDOW = "outside_window"
    # deaths
    DEATH_REGISTERED = "death_registered"
    DEATH_ALREADY_IN_FORCE = "death_already_in_force"
    DEATH_WITHDRAWN = "death_withdrawn"
    IGNORED_WITHDRAWAL = "ignored_withdrawal"
    # disability certifications
    DISABILITY_CERTIFIED = "disability_certified"
    DISABILITY_REVOKED = "disability_revoked"
    DISABILITY_EXPIRED = "disability_expired"
    # enrollments
    ENROLLMENT_STARTED = "enrollment_started"
    ENROLLMENT_UPDATED = "enrollment_updated"
    ENROLLMENT_ENDED = "enrollment_ended"
    ENDED_NOT_ACTIVE = "ended_not_active"
    APPLIED = "applied"  # a rule's default (``rules.common.Step``)
    DEAD_LETTER = "dead_letter"  # not processed: ``Processed.error_class`` says why


#: A rule's outcome text -> the Outcome (a dict lookup: a third of the time of ``Outcome(text)``).
_OUTCOMES: dict[str, Outcome] = {outcome.value: outcome for outcome in Outcome}


class Emit(Struct, frozen=True):
    """An output with its destination: logical topic name and message key."""

    topic: str
    key: bytes | None
    value: Output


class Processed(Struct, frozen=True):
    """What one record gave. (A msgspec struct: built per record, five times cheaper than a
    frozen dataclass.)"""

    emits: tuple[Emit, ...]
    outcome: Outcome
    event_id: str | None = None
    record: InputRecord | None = None  # the decoded record; None for a dead letter
    error_class: str | None = None  # a dead letter's class (``DeadLetter.error_class``); else None

    @property
    def event_time_us(self) -> int | None:
        """The record's event time, computed when asked (the worker's metrics ask, a backtest not)."""
        return None if self.record is None else event_time_us(self.record)


def stamped(value: Output, now: str) -> Output:
    """The output as sent: ``emitted_at`` (``received_at`` on a dead letter) set to ``now``."""
    if isinstance(value, DeadLetter):
        return replace(value, received_at=now)
    return replace(value, emitted_at=now)


def _route(output: Output) -> Emit:
    if isinstance(output, PaymentStop):
        return Emit("PAYMENT_STOPS", output.person_id.encode(), output)
    if isinstance(output, PaymentResume):
        return Emit("PAYMENT_RESUMES", output.person_id.encode(), output)
    if isinstance(output, SelfPayWarning) and output.rule == "HOUSEHOLD_SELF_PAY":
        return Emit("ASSISTANCE_WARNINGS", (output.household_id or "").encode(), output)
    return Emit("ASSISTANCE_WARNINGS", output.person_id.encode(), output)  # type: ignore[union-attr]


def _text_or_base64(raw: bytes | None) -> tuple[str | None, str | None]:
    if raw is None:
        return None, None
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


def dead_letter(
    rejected: Rejected,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    limit: int,
) -> Emit:
    # A value over the size limit is cut to the limit: the record stays findable by
    # topic/partition/offset, and the dead letter stays well under Kafka's message size.
    truncated = value is not None and len(value) > limit
    key_text, key_encoding = _text_or_base64(key)
    value_text, value_encoding = _text_or_base64(value[:limit] if truncated else value)  # type: ignore[index]
    letter = DeadLetter(
        topic=topic,
        partition=partition,
        offset=offset,
        key=key_text,
        key_encoding=key_encoding,  # type: ignore[arg-type]
        value=value_text,
        value_encoding=value_encoding,  # type: ignore[arg-type]
        value_truncated=truncated,
        error_class=rejected.error_class,
        error=rejected.error,
    )
    return Emit("DEADLETTER", key, letter)


def internal_dead_letter(
    exc: BaseException,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    limit: int,
) -> Emit:
    """A valid record whose processing raised (a defect): kept as a dead letter to replay once fixed.

    The reason names the exception type and message only: no stack, no state of the person.
    """
    message = str(exc).splitlines()[0][:300] if str(exc) else ""
    reason = f"processing raised {type(exc).__name__}" + (f": {message}" if message else "")
    reason += "; the person's state is as before this record; replay it once the defect is fixed"
    return dead_letter(Rejected("internal", reason), topic, partition, offset, key, value, limit)


def processing_failed(
    exc: BaseException,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    limit: int,
) -> Processed:
    """What a record whose processing raised gives: an ``internal`` dead letter (the caller
    drops the record's staged state writes)."""
    letter = internal_dead_letter(exc, topic, partition, offset, key, value, limit)
    return Processed((letter,), Outcome.DEAD_LETTER, error_class="internal")


#: Outcomes whose unchanged state is written again. A worker killed after writing a
#: record's state to its local store, but before the changelog had it, restarts with the
#: record uncommitted: it comes back, the local state already holds it, and without this
#: write the changelog would never get that change (a later rebuild from the changelog,
#: on a new node or an empty data dir, would lose it).
_REWRITE = frozenset({Outcome.DUPLICATE})

Handled = tuple[tuple[Output, ...], Outcome]


class Handler(Protocol):
    """One input kind's step: a decoded record in, its outputs and outcome out, state read and
    written through the ``StateAccess``es the handler was built with."""

    def __call__(self, rec: Any) -> Handled: ...


class SettlementHandler:
    """R1 and R8 on a settlement or reversal, and R4's settlement side."""

    def __init__(
        self,
        params: RuleParams,
        medical_state: StateAccess[MedicalState],
        status_state: StateAccess[StatusState],
    ) -> None:
        self.params = params
        self.medical_state = medical_state
        self.status_state = status_state

    def __call__(self, rec: MedicalSettlement) -> Handled:
        person = rec.person_id
        window = self.medical_state.get(person)
        step = medical.step(window, rec, hardship_holder=False, params=self.params)
        outcome = _OUTCOMES[step.outcome]
        # Unchanged state is not written again, but for a record the state already holds:
        # see ``_REWRITE``.
        if step.state is not window or outcome in _REWRITE:
            self.medical_state.put(person, step.state)
        outputs = step.outputs
        # The status state is read only for what needs it: R8's hardship flag on a warning,
        # and R4 on a settlement placed in the window. A duplicate, a reversal or a bill
        # outside the window without a warning never decodes it.
        if not outputs and outcome is not Outcome.COUNTED:
            return outputs, outcome
        held = self.status_state.get(person)
        if held is None:
            return outputs, outcome
        if outputs and held.hardship_holder:
            # The rule is pure: asked again with the flag, it gives the same warning flagged.
            outputs = medical.step(window, rec, hardship_holder=True, params=self.params).outputs
        if outcome is Outcome.COUNTED and held.death is not None:
            # R4, settlement side: the settlement just placed, against the death in force.
            placed = [e for e in step.state.entries if e.event_id == rec.event_id]  # type: ignore[union-attr]
            outputs += post_death.warnings(
                person, placed, held.death, self.params, region_code=rec.region_code
            )
        return outputs, outcome


class StatusHandler:
    """R2, R3, R5, R6 and R9 on a death, disability or enrollment record, and R4's death side."""

    def __init__(
        self,
        params: RuleParams,
        status_state: StateAccess[StatusState],
        medical_state: StateAccess[MedicalState],
    ) -> None:
        self.params = params
        self.status_state = status_state
        self.medical_state = medical_state

    def __call__(self, rec: StatusRecord) -> Handled:
        person = rec.person_id
        current = self.status_state.get(person)
        step = status.step(current, rec, params=self.params)
        outcome = _OUTCOMES[step.outcome]
        if step.state is not current or outcome in _REWRITE:
            self.status_state.put(person, step.state)
        outputs = step.outputs
        if outcome is Outcome.DEATH_REGISTERED:
            # R4, death side: the death now in force, against the settlements the window holds.
            held_window = self.medical_state.get(person)
            if held_window is not None:
                outputs += post_death.warnings(
                    person,
                    held_window.entries,
                    step.state.death,  # type: ignore[union-attr,arg-type]
                    self.params,
                    region_code=rec.region_code,
                )
        return outputs, outcome


class Processor:
    """The per-record path: a shared decode and dead-letter step, then the handler of the
    record's input kind, from a table keyed by logical topic (``register`` adds one)."""

    def __init__(
        self,
        settings: Settings,
        medical_state: StateAccess[MedicalState],
        status_state: StateAccess[StatusState],
    ) -> None:
        self.settings = settings
        self.params = settings.rules
        self.medical_state = medical_state
        self.status_state = status_state
        self.handlers: dict[str, Handler] = {}
        #: Kafka topic name -> (the record its values decode to, its handler): one lookup per record.
        self._routes: dict[str, tuple[type[InputRecord], Handler]] = {}
        self.register("MEDICAL_SETTLEMENTS", SettlementHandler(self.params, medical_state, status_state))
        status_handler = StatusHandler(self.params, status_state, medical_state)
        for logical in STATUS_TOPICS:
            self.register(logical, status_handler)

    def register(self, logical: str, handler: Handler) -> None:
        """Handle the records of this topic (declared in topology.py) with ``handler``; their
        values decode to the topic's value type first."""
        self.handlers[logical] = handler
        self._routes[self.settings.topic(logical)] = (TOPIC[logical].value_type, handler)

    def process(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None
    ) -> Processed:
        record_type, handler = self._routes[topic]
        rec = decode(record_type, key, value, self.settings.max_record_bytes)
        if isinstance(rec, Rejected):
            letter = dead_letter(rec, topic, partition, offset, key, value, self.settings.max_record_bytes)
            return Processed((letter,), Outcome.DEAD_LETTER, error_class=rec.error_class)
        outputs, outcome = handler(rec)
        return Processed(tuple(map(_route, outputs)), outcome, rec.event_id, rec)


def event_time_us(rec: InputRecord) -> int:
    """Event time of a record: when it happened at its source (not when it arrived)."""
    if isinstance(rec, MedicalSettlement):
        return to_us(rec.settled_at)
    if isinstance(rec, DeathRegistration):
        return to_us(rec.registered_at)
    return to_us(start_of_day_cst(rec.effective_on))
