"""Status rules R2 (death), R3 (disability), R5 (withdrawn death), R6 (duplicate assistance).

One state per person joins the three status feeds: the death in force, the current
certification, and the active enrollment episodes with the stops already sent in
each. After every record the conditions are evaluated afresh, so a feed that
arrives late still produces its stop, and each stop is sent once per episode
(and, for the death reasons, once per death in force).
"""

from __future__ import annotations

from bisect import insort
from datetime import date
from operator import attrgetter
from typing import Any

from msgspec import Struct
from msgspec.structs import replace

from stream_app.records import (
    AssistanceWarning,
    DeathRegistration,
    DisabilityRegistration,
    DuplicateAssistanceWarning,
    NursingEligibleWarning,
    Output,
    PaymentResume,
    PaymentStop,
    StatusRecord,
    SubsidyEnrollment,
    fen,
    money,
)
from stream_app.rules.common import CST, Step, first_of_next_month, output_id, start_of_day_cst
from stream_app.settings import RuleParams

DISABILITY_PROGRAMS = ("disability_living", "disability_nursing")
HARDSHIP_PROGRAMS = ("dibao", "tekun")
DEATH_REASONS = ("DEATH", "DECEASED_ENROLLMENT")
_HARDSHIP = frozenset(HARDSHIP_PROGRAMS)
_PROGRAM = attrgetter("program")
#: Status event ids remembered per person to count a redelivered record once.
SEEN_LIMIT = 256


class Death(Struct, frozen=True, array_like=True):
    event_id: str
    died_on: date
    #: The date of ``registered_at`` in +08:00: up to then payment offices kept paying (R9).
    #: None only for a death kept by a worker from before R9.
    registered_on: date | None = None
    region_code: str | None = None  # where the death was registered (R4 warnings go there)


class Certification(Struct, frozen=True, array_like=True):
    event_id: str
    status: str  # certified | revoked | expired
    effective_on: date
    level: int | None = None
    nursing_warned: bool = False  # DISABILITY_NURSING_ELIGIBLE sent in this certification episode


class SentStop(Struct, frozen=True, array_like=True):
    key: str  # reason, or reason|death event_id for the death reasons
    stop_id: str
    reason: str
    effective_on: date
    death_id: str | None = None


class Episode(Struct, frozen=True, array_like=True):
    """An enrollment episode: from an ``active`` record until an ``ended`` one."""

    program: str
    event_id: str  # the active record that began it
    effective_on: date
    monthly_amount_fen: int
    stops: tuple[SentStop, ...] = ()
    overlaps_warned: tuple[str, ...] = ()  # event_ids of episodes R6 already warned about


class StatusState(Struct, frozen=True, array_like=True):
    death: Death | None = None
    certification: Certification | None = None
    episodes: tuple[Episode, ...] = ()  # sorted by program
    seen: tuple[str, ...] = ()

    def episode(self, program: str) -> Episode | None:
        for ep in self.episodes:
            if ep.program == program:
                return ep
        return None

    @property
    def hardship_holder(self) -> bool:
        """R8: an active dibao or tekun (paid without a new application)."""
        # In C (map, isdisjoint): ``any()`` over a generator costs more than the few episodes it
        # checks, and this is asked for every settlement forwarded to a household.
        return not _HARDSHIP.isdisjoint(map(_PROGRAM, self.episodes))


_EMPTY = StatusState()
_TOPIC_TAG = {DeathRegistration: "d", DisabilityRegistration: "r", SubsidyEnrollment: "e"}


def _with_episode(state: StatusState, program: str, episode: Episode | None) -> StatusState:
    episodes = [ep for ep in state.episodes if ep.program != program]
    if episode is not None:
        insort(episodes, episode, key=lambda ep: ep.program)
    return replace(state, episodes=tuple(episodes))


def _apply(state: StatusState, rec: StatusRecord) -> tuple[StatusState, str, list[Output]]:
    """Fold the record into the state. Only a withdrawal emits here (its resumes)."""
    if isinstance(rec, DeathRegistration):
        if rec.status == "registered":
            if state.death is not None:
                return state, "death_already_in_force", []
            assert rec.died_on is not None  # decode refuses a registration without it
            death = Death(
                rec.event_id,
                rec.died_on,
                rec.registered_at.astimezone(CST).date(),
                rec.region_code,
            )
            return replace(state, death=death), "death_registered", []
        if state.death is None or rec.withdraws != state.death.event_id:
            return state, "ignored_withdrawal", []
        return _withdraw(state, rec)

    if isinstance(rec, DisabilityRegistration):
        current = state.certification
        if rec.status == "certified":
            # A level change keeps the certification episode (and its warning) going.
            warned = bool(current and current.status == "certified" and current.nursing_warned)
            cert = Certification(rec.event_id, rec.status, rec.effective_on, rec.level, warned)
        else:
            cert = Certification(rec.event_id, rec.status, rec.effective_on)
        return replace(state, certification=cert), f"disability_{rec.status}", []

    episode = state.episode(rec.program)
    if rec.status == "ended":
        if episode is None:
            return state, "ended_not_active", []
        return _with_episode(state, rec.program, None), "enrollment_ended", []
    amount_fen = fen(rec.monthly_amount)
    if episode is not None:  # a new amount in the same episode
        return (
            _with_episode(state, rec.program, replace(episode, monthly_amount_fen=amount_fen)),
            "enrollment_updated",
            [],
        )
    new = Episode(rec.program, rec.event_id, rec.effective_on, amount_fen)
    return _with_episode(state, rec.program, new), "enrollment_started", []


def _withdraw(state: StatusState, rec: DeathRegistration) -> tuple[StatusState, str, list[Output]]:
    """R5: the death in force was wrong; undo every stop it caused in still-active episodes."""
    assert state.death is not None  # step withdraws only the death in force
    death_id = state.death.event_id
    outputs: list[Output] = []
    episodes = []
    for ep in state.episodes:
        undone = [s for s in ep.stops if s.death_id == death_id]
        for stop in undone:
            outputs.append(
                PaymentResume(
                    resume_id=output_id("RESUME", stop.stop_id, rec.event_id),
                    stop_id=stop.stop_id,
                    person_id=rec.person_id,
                    region_code=rec.region_code,
                    program=ep.program,
                    reason="DEATH_WITHDRAWN",
                    effective_on=stop.effective_on,
                    caused_by=rec.event_id,
                )
            )
        episodes.append(replace(ep, stops=tuple(s for s in ep.stops if s.death_id != death_id)))
    return replace(state, death=None, episodes=tuple(episodes)), "death_withdrawn", outputs


def overpaid_months(stop_on: date, episode_on: date, registered_on: date) -> int:
    """R9: first days of a month d with max(stop_on, episode_on) <= d <= max(registered_on, episode_on).

    Offices pay on the first day of each month for that month while the episode is
    active, so these are the months paid after the death before its registration.
    """
    low, high = max(stop_on, episode_on), max(registered_on, episode_on)
    first = low if low.day == 1 else first_of_next_month(low)
    if first > high:
        return 0
    return (high.year - first.year) * 12 + high.month - first.month + 1


def _stop_key(reason: str, death: Death | None) -> str:
    """A sent stop's ``SentStop.key``: its reason, with the death's event_id for the death reasons."""
    return f"{reason}|{death.event_id}" if death is not None and death.event_id else reason


def _stop(
    rec: StatusRecord,
    ep: Episode,
    reason: str,
    caused_by: str,
    effective_on: date,
    death: Death | None,
) -> tuple[SentStop, PaymentStop]:
    # The death's id is part of the stop's: a stop for a later death is a new stop.
    death_id = death.event_id if death is not None else None
    stop_id = output_id("STOP", reason, rec.person_id, ep.program, ep.event_id, caused_by, death_id or "")
    key = _stop_key(reason, death)
    overpaid: dict[str, Any] = {}
    if death is not None:
        # R9, with the episode's monthly amount as known now: a stop once sent is never
        # sent again, so a later amount record does not change its figures.
        months = overpaid_months(effective_on, ep.effective_on, death.registered_on or death.died_on)
        overpaid = {"overpaid_months": months, "overpaid_amount": money(months * ep.monthly_amount_fen)}
    return (
        SentStop(key, stop_id, reason, effective_on, death_id),
        PaymentStop(
            stop_id=stop_id,
            person_id=rec.person_id,
            region_code=rec.region_code,
            program=ep.program,
            reason=reason,
            effective_on=effective_on,
            caused_by=caused_by,
            **overpaid,
        ),
    )


def _due_stops(state: StatusState, ep: Episode) -> list[tuple[str, str, date, Death | None]]:
    """(reason, caused_by, effective_on, death for the death reasons) of every stop condition that holds."""
    due: list[tuple[str, str, date, Death | None]] = []
    death, cert = state.death, state.certification
    if death is not None:
        if ep.effective_on <= death.died_on:
            due.append(("DEATH", death.event_id, first_of_next_month(death.died_on), death))
        else:
            due.append(("DECEASED_ENROLLMENT", ep.event_id, first_of_next_month(death.died_on), death))
    if cert is not None and ep.program in DISABILITY_PROGRAMS:
        effective_on = first_of_next_month(cert.effective_on)
        if cert.status in ("revoked", "expired"):
            due.append(("DISABILITY_REVOKED", cert.event_id, effective_on, None))
        elif ep.program == "disability_nursing" and cert.level in (3, 4):
            due.append(("DISABILITY_LEVEL_INELIGIBLE", cert.event_id, effective_on, None))
    return due


def _evaluate(state: StatusState, rec: StatusRecord, params: RuleParams) -> tuple[StatusState, list[Output]]:
    outputs: list[Output] = []
    episodes = []
    for ep in state.episodes:
        sent = {s.key for s in ep.stops}
        new_stops = []
        for reason, caused_by, effective_on, death in _due_stops(state, ep):
            # A stop already sent is known by its key alone: its id (a SHA-1) and record are
            # built only for a stop not yet sent.
            if _stop_key(reason, death) in sent:
                continue
            mark, stop = _stop(rec, ep, reason, caused_by, effective_on, death)
            new_stops.append(mark)
            outputs.append(stop)
        episodes.append(replace(ep, stops=ep.stops + tuple(new_stops)) if new_stops else ep)
    state = replace(state, episodes=tuple(episodes))

    state, duplicates = _duplicate_assistance(state, rec, params)
    outputs.extend(duplicates)

    cert = state.certification
    if (
        cert is not None
        and cert.status == "certified"
        and cert.level in (1, 2)
        and not cert.nursing_warned
        and state.death is None
        and state.episode("disability_nursing") is None
    ):
        outputs.append(
            NursingEligibleWarning(
                warning_id=output_id("DISABILITY_NURSING_ELIGIBLE", rec.person_id, cert.event_id),
                rule="DISABILITY_NURSING_ELIGIBLE",
                person_id=rec.person_id,
                region_code=rec.region_code,
                caused_by=cert.event_id,
                occurred_at=start_of_day_cst(cert.effective_on),
                evidence=(cert.event_id,),
                level=cert.level,
            )
        )
        state = replace(state, certification=replace(cert, nursing_warned=True))
    return state, outputs


def _duplicate_assistance(
    state: StatusState, rec: StatusRecord, params: RuleParams
) -> tuple[StatusState, list[AssistanceWarning]]:
    """R6: one warning per pair of overlapping episodes of exclusive programs."""
    warnings: list[AssistanceWarning] = []
    for first, second in params.exclusive_programs:
        a, b = state.episode(first), state.episode(second)
        if a is None or b is None:
            continue
        # Warned already: the episode that made the overlap keeps the other's event_id.
        # Look on both, so that any later record of the person finds the marker.
        if a.event_id in b.overlaps_warned or b.event_id in a.overlaps_warned:
            continue
        older, newer = _overlap_order(a, b, rec)
        evidence = tuple(sorted((a.event_id, b.event_id)))
        warnings.append(
            DuplicateAssistanceWarning(
                warning_id=output_id("DUPLICATE_ASSISTANCE", rec.person_id, *evidence),
                rule="DUPLICATE_ASSISTANCE",
                person_id=rec.person_id,
                region_code=rec.region_code,
                caused_by=newer.event_id,
                occurred_at=start_of_day_cst(newer.effective_on),
                evidence=evidence,
                programs=(first, second),
            )
        )
        marked = replace(newer, overlaps_warned=(*newer.overlaps_warned, older.event_id))
        state = _with_episode(state, newer.program, marked)
    return state, warnings


def _overlap_order(a: Episode, b: Episode, rec: StatusRecord) -> tuple[Episode, Episode]:
    """(older, newer) of two overlapping episodes: the newer one made the overlap.

    An overlap begins with the ``active`` record that starts the second episode, and
    is warned while that record is processed. Only when a pair is first seen on some
    other record (a pair added to the settings, say) is the newer one chosen from the
    episodes alone: the later ``effective_on``, then the larger event_id.
    """
    if b.event_id == rec.event_id:
        return a, b
    if a.event_id == rec.event_id:
        return b, a
    older, newer = sorted((a, b), key=lambda ep: (ep.effective_on, ep.event_id))
    return older, newer


def step(state: StatusState | None, rec: StatusRecord, *, params: RuleParams) -> Step[StatusState]:
    """Apply one death, disability or enrollment record and emit what now holds."""
    state = state or _EMPTY
    seen_key = f"{_TOPIC_TAG[type(rec)]}:{rec.event_id}"
    if seen_key in state.seen:
        return Step(state, (), "duplicate")
    state, outcome, outputs = _apply(state, rec)
    state, emitted = _evaluate(state, rec, params)
    seen = (*state.seen, seen_key)[-SEEN_LIMIT:]
    return Step(replace(state, seen=seen), tuple(outputs + emitted), outcome)
