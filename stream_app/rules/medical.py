"""R1 MEDICAL_SELF_PAY (with R8's suggested amount): the rolling 365-day self-pay per person.

State holds only the settlements inside the window (reversed ones too, flagged, so
that a redelivered original is still recognised and counted once); everything
older than the window is pruned, so state is proportional to a person's recent bills.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import date, timedelta
from decimal import ROUND_FLOOR, Decimal
from operator import attrgetter

from msgspec import Struct
from msgspec.structs import replace

from stream_app.records import MedicalSettlement, SelfPayWarning, fen, money
from stream_app.rules.common import Step, from_us, output_id, to_us
from stream_app.settings import AssistanceStandard, RuleParams

RULE = "MEDICAL_SELF_PAY"
WINDOW = timedelta(days=365)
WINDOW_US = WINDOW // timedelta(microseconds=1)

# Field getters: passes over a window run in C (map, bisect), not in Python loops.
_EVENT_ID = attrgetter("event_id")
_SETTLED_US = attrgetter("settled_us")
_SELF_PAY_FEN = attrgetter("self_pay_fen")
_REVERSED = attrgetter("reversed")


class Entry(Struct, frozen=True, array_like=True, order=True):
    """One settlement inside the window. Sorted by (settled_us, event_id)."""

    settled_us: int
    event_id: str
    self_pay_fen: int
    service_on: date
    household_id: str | None = None
    reversed: bool = False


class MedicalState(Struct, frozen=True, array_like=True):
    newest_us: int  # newest settled_at seen: the window ends here
    newest_offset_s: int  # its UTC offset, so window dates read as the source wrote them
    entries: tuple[Entry, ...] = ()
    disarmed_fen: tuple[int, ...] = ()  # tiers reached and not yet fallen below

    @property
    def rolling_fen(self) -> int:
        entries = self.entries
        total = sum(map(_SELF_PAY_FEN, entries))
        if True in map(_REVERSED, entries):  # rare: a reversed settlement still in the window
            total -= sum(e.self_pay_fen for e in entries if e.reversed)
        return total

    @property
    def window_start(self) -> date:
        return from_us(self.newest_us - WINDOW_US, self.newest_offset_s).date()

    @property
    def window_end(self) -> date:
        return from_us(self.newest_us, self.newest_offset_s).date()


def suggested_fen(rolling_fen: int, standard: AssistanceStandard) -> int:
    """R8: min(cap, rate x max(0, rolling - deductible)), rounded down to the fen."""
    over = Decimal(max(0, rolling_fen - standard.deductible_fen))
    return min(standard.cap_fen, int((standard.rate * over).to_integral_value(ROUND_FLOOR)))


def _apply(state: MedicalState | None, rec: MedicalSettlement) -> tuple[MedicalState | None, str]:
    """Place the record in the window; say what it did."""
    entries = state.entries if state is not None else ()
    if rec.kind == "reversal":
        try:
            i = list(map(_EVENT_ID, entries)).index(rec.reverses)
        except ValueError:
            return state, "unknown_reversal"
        entry = entries[i]
        if entry.reversed:
            return state, "duplicate"
        reversed_entries = (*entries[:i], replace(entry, reversed=True), *entries[i + 1 :])
        return replace(state, entries=reversed_entries), "reversed"  # type: ignore[type-var]

    if rec.event_id in map(_EVENT_ID, entries):
        return state, "duplicate"
    at_us = to_us(rec.settled_at)
    offset_s = int(rec.settled_at.utcoffset().total_seconds())  # type: ignore[union-attr]
    if state is None or at_us >= state.newest_us:
        newest_us, newest_offset_s = at_us, offset_s
    else:
        newest_us, newest_offset_s = state.newest_us, state.newest_offset_s
    floor_us = newest_us - WINDOW_US
    if at_us <= floor_us:
        return state, "outside_window"
    entry = Entry(
        settled_us=at_us,
        event_id=rec.event_id,
        self_pay_fen=fen(rec.self_pay),  # type: ignore[arg-type]
        service_on=rec.service_on or rec.settled_at.date(),
        household_id=rec.household_id,
    )
    # Entries are sorted by settled_us: prune those at or before the floor with one bisection
    # (the new entry is after the floor), and insert the new one where insort would.
    start = bisect_right(entries, floor_us, key=_SETTLED_US)
    at = bisect_right(entries, entry, lo=start)
    window = (*entries[start:at], entry, *entries[at:])
    disarmed = state.disarmed_fen if state else ()
    return MedicalState(newest_us, newest_offset_s, window, disarmed), "counted"


def step(
    state: MedicalState | None,
    rec: MedicalSettlement,
    *,
    hardship_holder: bool,
    params: RuleParams,
) -> Step[MedicalState]:
    """Apply one settlement or reversal; warn when it lifts the sum to an armed tier."""
    new, outcome = _apply(state, rec)
    if new is None or new is state:
        return Step(state, (), outcome)
    rolling = new.rolling_fen
    tiers = params.medical_tiers_fen
    # Tiers above the new sum re-arm first; then armed tiers at or below it fire.
    still_disarmed = {t for t in new.disarmed_fen if t <= rolling and t in tiers}
    fired = [t for t in tiers if t <= rolling and t not in still_disarmed]
    new = replace(new, disarmed_fen=tuple(sorted(still_disarmed.union(fired))))
    if not fired:
        return Step(new, (), outcome)
    tier = max(fired)
    warning = SelfPayWarning(
        warning_id=output_id(RULE, rec.person_id, rec.event_id, str(tier)),
        rule=RULE,
        person_id=rec.person_id,
        region_code=rec.region_code,
        household_id=rec.household_id,
        caused_by=rec.event_id,
        occurred_at=rec.settled_at,
        evidence=tuple(e.event_id for e in new.entries if not e.reversed),
        tier=money(tier),
        rolling_self_pay=money(rolling),
        window_start=new.window_start,
        window_end=new.window_end,
        suggested_amount=money(suggested_fen(rolling, params.standard)),
        hardship_holder=hardship_holder,
    )
    return Step(new, (warning,), outcome)
