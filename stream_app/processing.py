"""One record in, outputs out: decode, look up state, call the rule, write state.

This is the whole per-record path, with no Faust import: the agents call it on
tables, ``stream-app backtest`` and the demo's expectations call it on dicts, so
both give the same outputs with the same ids. Emitting (and the wall-clock
``emitted_at``) is the caller's job.
"""

from __future__ import annotations

import base64

from msgspec import Struct
from msgspec.structs import replace

from stream_app.records import (
    DeadLetter,
    DeathRegistration,
    DisabilityRegistration,
    InputRecord,
    MedicalSettlement,
    Output,
    PaymentResume,
    PaymentStop,
    Rejected,
    SelfPayWarning,
    SubsidyEnrollment,
    decode,
)
from stream_app.rules import medical, post_death, status
from stream_app.rules.common import start_of_day_cst, to_us
from stream_app.rules.medical import MedicalState
from stream_app.rules.status import StatusState
from stream_app.settings import Settings
from stream_app.state import DictState as DictState  # re-exported: tests and tools build on it
from stream_app.state import StateAccess

#: Logical input topic -> the record its values decode to.
INPUT_TYPES: dict[str, type[InputRecord]] = {
    "MEDICAL_SETTLEMENTS": MedicalSettlement,
    "DISABILITY_REGISTRATIONS": DisabilityRegistration,
    "DEATH_REGISTRATIONS": DeathRegistration,
    "SUBSIDY_ENROLLMENTS": SubsidyEnrollment,
}
STATUS_TOPICS = ("DISABILITY_REGISTRATIONS", "DEATH_REGISTRATIONS", "SUBSIDY_ENROLLMENTS")


class Emit(Struct, frozen=True):
    """An output with its destination: logical topic name and message key."""

    topic: str
    key: bytes | None
    value: Output


class Processed(Struct, frozen=True):
    """What one record gave. (A msgspec struct: built per record, five times cheaper than a
    frozen dataclass.)"""

    emits: tuple[Emit, ...]
    outcome: str  # what the record did: counted, duplicate, dead_letter:<class>, ...
    event_id: str | None = None
    record: InputRecord | None = None  # the decoded record; None for a dead letter

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


#: Outcomes whose unchanged state is written again. A worker killed after writing a
#: record's state to its local store, but before the changelog had it, restarts with the
#: record uncommitted: it comes back, the local state already holds it, and without this
#: write the changelog would never get that change (a later rebuild from the changelog,
#: on a new node or an empty data dir, would lose it).
_REWRITE = frozenset({"duplicate"})


class Processor:
    """The per-record path over two per-person states (medical, status)."""

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
        self.logical = {name: logical for logical, name in settings.topics.items()}

    def process(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None
    ) -> Processed:
        logical = self.logical[topic]
        rec = decode(INPUT_TYPES[logical], key, value, self.settings.max_record_bytes)
        if isinstance(rec, Rejected):
            letter = dead_letter(rec, topic, partition, offset, key, value, self.settings.max_record_bytes)
            return Processed((letter,), f"dead_letter:{rec.error_class}")
        person = rec.person_id
        outputs: tuple[Output, ...]
        if isinstance(rec, MedicalSettlement):
            window = self.medical_state.get(person)
            held = self.status_state.get(person)
            medical_step = medical.step(
                window, rec, hardship_holder=bool(held and held.hardship_holder), params=self.params
            )
            outputs, outcome = medical_step.outputs, medical_step.outcome
            # Unchanged state is not written again, but for a record the state already holds:
            # see ``_REWRITE``.
            if medical_step.state is not window or outcome in _REWRITE:
                self.medical_state.put(person, medical_step.state)
            if outcome == "counted" and held is not None and held.death is not None:
                # R4, settlement side: the settlement just placed, against the death in force.
                placed = [e for e in medical_step.state.entries if e.event_id == rec.event_id]  # type: ignore[union-attr]
                outputs += post_death.warnings(
                    person, placed, held.death, self.params, region_code=rec.region_code
                )
        else:
            current = self.status_state.get(person)
            status_step = status.step(current, rec, params=self.params)
            outputs, outcome = status_step.outputs, status_step.outcome
            if status_step.state is not current or outcome in _REWRITE:
                self.status_state.put(person, status_step.state)
            if outcome == "death_registered":
                # R4, death side: the death now in force, against the settlements the window holds.
                held_window = self.medical_state.get(person)
                if held_window is not None:
                    outputs += post_death.warnings(
                        person,
                        held_window.entries,
                        status_step.state.death,  # type: ignore[union-attr,arg-type]
                        self.params,
                        region_code=rec.region_code,
                    )
        return Processed(tuple(map(_route, outputs)), outcome, rec.event_id, rec)


def event_time_us(rec: InputRecord) -> int:
    """Event time of a record: when it happened at its source (not when it arrived)."""
    if isinstance(rec, MedicalSettlement):
        return to_us(rec.settled_at)
    if isinstance(rec, DeathRegistration):
        return to_us(rec.registered_at)
    return to_us(start_of_day_cst(rec.effective_on))
