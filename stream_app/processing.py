"""One record in, outputs out: decode, look up state, call the rule, write state.

This is the whole per-record path, with no Faust import: the agents call it on
tables, ``stream-app backtest`` and the demo's expectations call it on dicts, so
both give the same outputs with the same ids. Emitting (and the wall-clock
``emitted_at``) is the caller's job.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from enum import StrEnum
from functools import partial
from typing import Any, Protocol

from msgspec import Struct
from msgspec.structs import replace

from stream_app.records import (
    DeadLetter,
    DeathRegistration,
    HouseholdSettlement,
    InputRecord,
    MedicalSettlement,
    PaymentResume,
    PaymentStop,
    Rejected,
    SelfPayWarning,
    Sent,
    StatusRecord,
    decode,
    decode_rekeyed,
    encode,
)
from stream_app.rules import household, medical, post_death, status
from stream_app.rules.common import Step, start_of_day_cst, to_us
from stream_app.rules.household import HouseholdState
from stream_app.rules.medical import MedicalState
from stream_app.rules.status import StatusState
from stream_app.rules.window import find as held_entry
from stream_app.settings import RuleParams, Settings
from stream_app.state import DictState as DictState  # re-exported: tests and tools build on it
from stream_app.state import StateAccess
from stream_app.topology import INPUT_TOPICS, INTERNAL_TOPICS, TOPIC

#: Logical input topic -> the record its values decode to (declared in topology.py).
INPUT_TYPES: dict[str, type[InputRecord]] = {logical: TOPIC[logical].value_type for logical in INPUT_TOPICS}
STATUS_TOPICS = ("DISABILITY_REGISTRATIONS", "DEATH_REGISTRATIONS", "SUBSIDY_ENROLLMENTS")
#: The internal topic that carries settlements re-keyed by household (R7).
HOUSEHOLD_TOPIC = "HOUSEHOLD_SETTLEMENTS"
#: Every topic the worker consumes: the inputs, then its internal topics.
CONSUMED_TOPICS: tuple[str, ...] = (*INPUT_TOPICS, *INTERNAL_TOPICS)


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
    """An output with its destination: logical topic name and message key. An emit to the
    internal household topic carries a ``HouseholdSettlement`` (not printed by a backtest,
    processed again instead: ``feed_back``)."""

    topic: str
    key: bytes | None
    value: Sent


class Processed(Struct, frozen=True):
    """What one record gave. (A msgspec struct: built per record, five times cheaper than a
    frozen dataclass.)"""

    emits: tuple[Emit, ...]
    outcome: Outcome
    event_id: str | None = None
    record: InputRecord | HouseholdSettlement | None = None  # the decoded record; None for a dead letter
    error_class: str | None = None  # a dead letter's class (``DeadLetter.error_class``); else None

    @property
    def event_time_us(self) -> int | None:
        """The record's event time, computed when asked (the worker's metrics ask, a backtest not)."""
        return None if self.record is None else event_time_us(self.record)


def stamped(value: Sent, now: str) -> Sent:
    """The output as sent: ``emitted_at`` (``received_at`` on a dead letter) set to ``now``.
    A re-keyed record is sent as it is: a replay must send it again byte for byte."""
    if isinstance(value, DeadLetter):
        return replace(value, received_at=now)
    if isinstance(value, HouseholdSettlement):
        return value
    return replace(value, emitted_at=now)


def _route(output: Sent) -> Emit:
    if isinstance(output, HouseholdSettlement):
        return Emit(HOUSEHOLD_TOPIC, output.household_id.encode(), output)
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

Handled = tuple[tuple[Sent, ...], Outcome]


#: Decodes a topic's value (key, value, size limit) into its record, or says why not.
Decoder = Callable[[bytes | None, bytes | None, int], Any]


class Handler(Protocol):
    """One input kind's step: a decoded record in, its outputs and outcome out, state read and
    written through the ``StateAccess``es the handler was built with."""

    def __call__(self, rec: Any) -> Handled: ...


def _kept(store: StateAccess[Any], key: str, before: Any, step: Step[Any]) -> Outcome:
    """Write the rule's new state (unchanged state is not written again, but for a record the
    state already holds: see ``_REWRITE``) and give the step's outcome, typed."""
    outcome = _OUTCOMES[step.outcome]
    if step.state is not before or outcome in _REWRITE:
        store.put(key, step.state)
    return outcome


class SettlementHandler:
    """R1 and R8 on a settlement or reversal, R4's settlement side, and R7's person side: a
    settlement or reversal that names a household is forwarded, re-keyed, to the household
    topic (``forwards``)."""

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
        outcome = _kept(self.medical_state, person, window, step)
        outputs: tuple[Sent, ...] = step.outputs
        rekeyed = None
        if rec.kind == "reversal" and outcome in _FORWARDED:  # ``forwards``, inline
            # R7: to the household of the settlement it cancels (the window's entry of it,
            # read before this record), as reversals need not repeat the household. No R8
            # flag travels with a reversal, so the status state is not read for it.
            rekeyed = household.rekeyed(rec, held_entry(window, rec.reverses), hardship_holder=False)  # type: ignore[arg-type]
            if not step.outputs:
                return (rekeyed,) if rekeyed is not None else outputs, outcome
        forward = rec.household_id is not None and rec.kind == "settlement" and outcome in _FORWARDED
        # The status state is read only for what needs it: R8's hardship flag on a warning or
        # on a forward to the household, and R4 on a settlement placed in the window. A
        # duplicate, a reversal or a bill outside the window with neither never decodes it.
        if not step.outputs and outcome is not Outcome.COUNTED and not forward:
            return outputs, outcome
        held = self.status_state.get(person)
        hardship = held is not None and held.hardship_holder
        if step.outputs and hardship:
            # The rule is pure: asked again with the flag, it gives the same warning flagged.
            outputs = medical.step(window, rec, hardship_holder=True, params=self.params).outputs
        if outcome is Outcome.COUNTED and held is not None and held.death is not None:
            # R4, settlement side: the settlement just placed, against the death in force.
            placed = [e for e in step.state.entries if e.event_id == rec.event_id]  # type: ignore[union-attr]
            outputs += post_death.warnings(
                person, placed, held.death, self.params, region_code=rec.region_code
            )
        if forward:
            # R7: the settlement re-keyed by household, with the member's R8 flag now.
            rekeyed = household.rekeyed(rec, hardship_holder=hardship)
        if rekeyed is not None:
            outputs += (rekeyed,)
        return outputs, outcome


#: Person-side outcomes whose record is forwarded to the household topic (when it names a
#: household). Not ``DUPLICATE``: a record the person's state already holds had its forward
#: acknowledged by the broker before that state was written (outputs, then state), so the
#: household topic has it already; that holds after a kill between the forward and the state
#: write too (the replay finds the old state, is not a duplicate, and forwards the same bytes
#: again, which the household side counts once), and in the ``_REWRITE`` case (the local
#: store's write came after the forward). Not forwarding a duplicate also keeps a redelivered
#: input from sending a forward with a different ``hardship_holder`` than the first.
#: ``OUTSIDE_WINDOW`` and ``UNKNOWN_REVERSAL`` are forwarded: they are about the person's
#: window, and the household's may still hold that time or that settlement.
_FORWARDED = frozenset({Outcome.COUNTED, Outcome.OUTSIDE_WINDOW, Outcome.REVERSED, Outcome.UNKNOWN_REVERSAL})


def forwards(outcome: Outcome) -> bool:
    """Whether a settlement or reversal with this person-side outcome goes to its household."""
    return outcome in _FORWARDED


class HouseholdHandler:
    """R7 and R8 on a settlement or reversal re-keyed by household (the internal topic)."""

    def __init__(self, params: RuleParams, household_state: StateAccess[HouseholdState]) -> None:
        self.params = params
        self.household_state = household_state

    def __call__(self, rec: HouseholdSettlement) -> Handled:
        key = rec.household_id
        current = self.household_state.get(key)
        step = household.step(current, rec, params=self.params)
        outcome = _kept(self.household_state, key, current, step)
        return step.outputs, outcome


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
        outcome = _kept(self.status_state, person, current, step)
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
        household_state: StateAccess[HouseholdState] | None = None,
    ) -> None:
        self.settings = settings
        self.params = settings.rules
        self._max_record_bytes = settings.max_record_bytes  # read per record
        self.medical_state = medical_state
        self.status_state = status_state
        #: In a dict when not given (a backtest or an expectation that does not look at it).
        self.household_state: StateAccess[HouseholdState] = (
            DictState() if household_state is None else household_state
        )
        self.handlers: dict[str, Handler] = {}
        #: Kafka topic name -> (its values' decoder, its handler): one lookup per record.
        self._routes: dict[str, tuple[Decoder, Handler]] = {}
        self.register("MEDICAL_SETTLEMENTS", SettlementHandler(self.params, medical_state, status_state))
        status_handler = StatusHandler(self.params, status_state, medical_state)
        for logical in STATUS_TOPICS:
            self.register(logical, status_handler)
        self.register(HOUSEHOLD_TOPIC, HouseholdHandler(self.params, self.household_state), decode_rekeyed)

    def register(self, logical: str, handler: Handler, decoder: Decoder | None = None) -> None:
        """Handle the records of this topic (declared in topology.py) with ``handler``; their
        values are decoded first (by default: an input's decode into the topic's value type)."""
        self.handlers[logical] = handler
        if decoder is None:
            decoder = partial(decode, TOPIC[logical].value_type)
        self._routes[self.settings.topic(logical)] = (decoder, handler)

    def process(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None
    ) -> Processed:
        decoder, handler = self._routes[topic]
        rec = decoder(key, value, self._max_record_bytes)
        if isinstance(rec, Rejected):
            letter = dead_letter(rec, topic, partition, offset, key, value, self._max_record_bytes)
            return Processed((letter,), Outcome.DEAD_LETTER, error_class=rec.error_class)
        outputs, outcome = handler(rec)
        # Most records emit nothing: no routing pass for them.
        return Processed(tuple(map(_route, outputs)) if outputs else (), outcome, rec.event_id, rec)

    def process_forward(self, forward: Emit) -> Processed:
        """What the household side makes of a re-keyed record among a record's emits, handed
        over as the record itself (a backtest): what ``process`` gives for its bytes, without
        decoding them again. That decode gives this very record back (the person side built
        it from a valid input, keyed by its ``household_id``; a property test pins it), so only
        the size limit can refuse it: a value over the limit takes the bytes path, and its
        dead letter. Partition and offset are -1 (nothing was consumed)."""
        value = encode(forward.value)
        if len(value) > self._max_record_bytes:
            return self.process(self.settings.topic(HOUSEHOLD_TOPIC), -1, -1, forward.key, value)
        rec: HouseholdSettlement = forward.value  # type: ignore[assignment]
        outputs, outcome = self.handlers[HOUSEHOLD_TOPIC](rec)  # the registered one
        return Processed(tuple(map(_route, outputs)) if outputs else (), outcome, rec.event_id, rec)

    def with_households(self, processed: Processed) -> tuple[Emit, ...]:
        """Everything a streaming run sends out for this record: its outputs but the re-keyed
        records, then what the household side makes of those (``feed_back``)."""
        emits = tuple(item for item in processed.emits if item.topic != HOUSEHOLD_TOPIC)
        if len(emits) == len(processed.emits):
            return emits
        for fed in self.feed_back(processed):
            emits += fed.emits
        return emits

    def feed_back(self, processed: Processed) -> tuple[Processed, ...]:
        """What the re-keyed records among ``processed``'s outputs give when processed in turn,
        as the worker's household agent would, through their bytes (without a broker: the tests'
        expectations, the demo's; the backtest hands them over as records: ``process_forward``).
        Only their outputs matter here; partition and offset are -1 (nothing was consumed)."""
        topic = self.settings.topic(HOUSEHOLD_TOPIC)
        return tuple(
            self.process(topic, -1, -1, item.key, encode(item.value))
            for item in processed.emits
            if item.topic == HOUSEHOLD_TOPIC
        )


def event_time_us(rec: InputRecord | HouseholdSettlement) -> int:
    """Event time of a record: when it happened at its source (not when it arrived)."""
    if isinstance(rec, (MedicalSettlement, HouseholdSettlement)):
        return to_us(rec.settled_at)
    if isinstance(rec, DeathRegistration):
        return to_us(rec.registered_at)
    return to_us(start_of_day_cst(rec.effective_on))
