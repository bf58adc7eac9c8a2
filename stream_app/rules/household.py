"""R7 HOUSEHOLD_SELF_PAY (with R8's figures): the rolling 365-day self-pay of a household.

支出型贫困 is judged per household: members who each stay under a tier can cross it
together. A household spans partitions (its members' person_ids hash anywhere), so the
person side sends each settlement or reversal that names a household through an internal
topic keyed by ``household_id`` (:func:`rekeyed` builds that record), and the household
side keeps one window per household with the same window code as R1
(``stream_app.rules.window``): duplicates (a redelivered re-keyed record) count once,
reversals cancel their original, tiers arm and fire as in R1.

Everything the household side needs travels in the re-keyed record, R8's
``hardship_holder`` included (the member's, at that settlement), so it never looks
across partitions. The wiring (topic, table, agent) is in ``stream_app.processing`` and
``agents/households.py``; this module is the pure rule.
"""

from __future__ import annotations

from msgspec.structs import replace

from stream_app.records import HouseholdSettlement, MedicalSettlement, fen
from stream_app.rules import window
from stream_app.rules.common import Step, offset_s, to_us
from stream_app.rules.medical import self_pay_warning
from stream_app.rules.window import Entry
from stream_app.settings import RuleParams

RULE = "HOUSEHOLD_SELF_PAY"


class HouseholdEntry(Entry, frozen=True, array_like=True, order=True):
    """A settlement in a household's window: R1's entry plus the member and their R8 flag."""

    person_id: str = ""
    hardship_holder: bool = False


class HouseholdState(window.Window, frozen=True, array_like=True):
    """A household's window: the same msgpack array as a person's, with household entries."""

    entries: tuple[HouseholdEntry, ...] = ()


def rekeyed(
    rec: MedicalSettlement, held: Entry | None = None, *, hardship_holder: bool
) -> HouseholdSettlement | None:
    """What the person side sends to the household topic for ``rec``, or None (no household).

    A settlement goes to its ``household_id``. A reversal goes to the household of the
    settlement it reverses, taken from ``held`` (that settlement's entry in the person's
    window, :func:`stream_app.rules.window.find`) since reversals need not repeat the
    household; else to the reversal's own ``household_id``. Every such record is sent, even
    one the person side found a duplicate: the household side judges it against its own window.
    """
    if rec.kind == "reversal":
        household_id = (held.household_id if held is not None else None) or rec.household_id
        if household_id is None:
            return None
        return HouseholdSettlement(
            household_id=household_id,
            person_id=rec.person_id,
            event_id=rec.event_id,
            region_code=rec.region_code,
            settled_at=rec.settled_at,
            kind="reversal",
            reverses=rec.reverses,
        )
    if rec.household_id is None:
        return None  # counts for its person only
    return HouseholdSettlement(
        household_id=rec.household_id,
        person_id=rec.person_id,
        event_id=rec.event_id,
        region_code=rec.region_code,
        settled_at=rec.settled_at,
        self_pay_fen=fen(rec.self_pay),  # type: ignore[arg-type]
        service_on=rec.service_on or rec.settled_at.date(),
        hardship_holder=hardship_holder,
    )


def _entry(rec: HouseholdSettlement) -> HouseholdEntry:
    return HouseholdEntry(
        to_us(rec.settled_at),
        rec.event_id,
        rec.self_pay_fen,
        rec.service_on or rec.settled_at.date(),
        None,  # the window is the household's: no need to repeat it per entry
        False,
        rec.person_id,
        rec.hardship_holder,
    )


def members(state: HouseholdState) -> tuple[str, ...]:
    """The person_ids with settlements that count in the window, sorted."""
    return tuple(sorted({e.person_id for e in state.entries if not e.reversed}))


def hardship_holder(state: HouseholdState) -> bool:
    """R8 for R7: any member in the window had a dibao or tekun at their latest settlement there."""
    latest: dict[str, bool] = {}
    for e in state.entries:  # in (settled_us, event_id) order: the last one of a member wins
        if not e.reversed:
            latest[e.person_id] = e.hardship_holder
    return True in latest.values()


def step(
    state: HouseholdState | None, rec: HouseholdSettlement, *, params: RuleParams
) -> Step[HouseholdState]:
    """Apply one re-keyed settlement or reversal; warn when it lifts the household's sum to an armed tier."""
    if rec.kind == "reversal":
        new, outcome = window.reverse(state, rec.reverses)  # type: ignore[arg-type]
    else:
        new, outcome = window.settle(state, _entry(rec), offset_s(rec.settled_at), HouseholdState)
    if new is None or new is state:
        return Step(state, (), outcome)
    rolling = new.rolling_fen
    disarmed, tier = window.fire(rolling, new.disarmed_fen, params.household_tiers_fen)
    if disarmed != new.disarmed_fen:
        new = replace(new, disarmed_fen=disarmed)
    if tier is None:
        return Step(new, (), outcome)
    warning = self_pay_warning(
        RULE,
        rec.household_id,
        rec,
        new,
        tier,
        params,
        hardship_holder=hardship_holder(new),
        members=members(new),
    )
    return Step(new, (warning,), outcome)
