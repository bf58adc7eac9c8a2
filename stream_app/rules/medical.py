"""R1 MEDICAL_SELF_PAY (with R8's suggested amount): the rolling 365-day self-pay per person.

The window (settlements inside it, reversed ones flagged, the rolling sum and a duplicate
index kept as they come and go) is ``stream_app.rules.window``, shared with R7 (households).
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

from msgspec.structs import replace

from stream_app.records import HouseholdSettlement, MedicalSettlement, SelfPayWarning, money
from stream_app.rules import window
from stream_app.rules.common import Step, offset_s, output_id, to_us
from stream_app.rules.window import WINDOW, WINDOW_US, Entry, Window
from stream_app.settings import AssistanceStandard, RuleParams

RULE = "MEDICAL_SELF_PAY"

__all__ = ["RULE", "WINDOW", "WINDOW_US", "Entry", "MedicalState", "step", "suggested_fen"]


class MedicalState(window.Window, frozen=True, array_like=True):
    """A person's window. In msgpack: ``[newest_us, newest_offset_s, entries, disarmed_fen,
    sum_fen, id_digests]`` (the last two absent in state written before they were kept)."""


def suggested_fen(rolling_fen: int, standard: AssistanceStandard) -> int:
    """R8: min(cap, rate x max(0, rolling - deductible)), rounded down to the fen."""
    over = Decimal(max(0, rolling_fen - standard.deductible_fen))
    return min(standard.cap_fen, int((standard.rate * over).to_integral_value(ROUND_FLOOR)))


def self_pay_warning(
    rule: str,
    key_id: str,
    rec: MedicalSettlement | HouseholdSettlement,
    state: Window,
    tier: int,
    params: RuleParams,
    *,
    hardship_holder: bool,
    members: tuple[str, ...] | None,
) -> SelfPayWarning:
    """The R1 or R7 warning (with R8's figures) for the settlement ``rec`` that lifted the
    rolling sum of ``state`` (a person's or a household's, keyed by ``key_id``) to ``tier``."""
    rolling = state.rolling_fen
    return SelfPayWarning(
        warning_id=output_id(rule, key_id, rec.event_id, str(tier)),
        rule=rule,
        person_id=rec.person_id,
        region_code=rec.region_code,
        household_id=rec.household_id,
        caused_by=rec.event_id,
        occurred_at=rec.settled_at,
        evidence=tuple(e.event_id for e in state.entries if not e.reversed),
        tier=money(tier),
        rolling_self_pay=money(rolling),
        window_start=state.window_start,
        window_end=state.window_end,
        suggested_amount=money(suggested_fen(rolling, params.standard)),
        hardship_holder=hardship_holder,
        members=members,
    )


def step(
    state: MedicalState | None,
    rec: MedicalSettlement,
    *,
    hardship_holder: bool,
    params: RuleParams,
) -> Step[MedicalState]:
    """Apply one settlement or reversal; warn when it lifts the sum to an armed tier."""
    if rec.kind == "reversal":
        new, outcome = window.reverse(state, rec.reverses)  # type: ignore[arg-type]
    else:
        # Inline (four records in five are settlements): the entry, its time in exact microseconds.
        at = rec.settled_at  # aware: decode requires an offset
        entry = Entry(
            to_us(at),
            rec.event_id,
            int(rec.self_pay * 100),  # type: ignore[operator]  # validated to whole fen
            rec.service_on or at.date(),
            rec.household_id,
        )
        new, outcome = window.settle(state, entry, offset_s(at), MedicalState)
    if new is None or new is state:
        return Step(state, (), outcome)
    rolling: int = new.sum_fen  # type: ignore[assignment]  # settle and reverse keep it
    tiers = params.medical_tiers_fen
    if not new.disarmed_fen and (not tiers or rolling < min(tiers)):
        return Step(new, (), outcome)  # the usual case: below every tier, none disarmed (see window.fire)
    disarmed, tier = window.fire(rolling, new.disarmed_fen, tiers)
    if disarmed != new.disarmed_fen:
        new = replace(new, disarmed_fen=disarmed)
    if tier is None:
        return Step(new, (), outcome)
    warning = self_pay_warning(
        RULE, rec.person_id, rec, new, tier, params, hardship_holder=hardship_holder, members=None
    )
    return Step(new, (warning,), outcome)
