"""R4 POST_DEATH_ACTIVITY: care billed for a date after the death in force (plus a grace period).

An identity in use after death, or a wrong death record. The settlement and the death
come on different feeds in no promised order, so the check runs from both sides over
the same facts: a settlement placed in the window while a death is in force is checked
against that death, and a death that comes into force is checked against every
settlement the person's window holds. Whichever side meets the pair first warns, with
the same id and the same content, and the other side never sees it (the settlement was
not yet in the window, or the death not yet in force), so each (settlement, death)
pair warns once. A reversal processed later does not unsend a warning.

Everything in the warning comes from the window entry and the death in force, never
from the record being processed, so both sides write it byte for byte the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from stream_app.records import PostDeathWarning, money
from stream_app.rules.common import from_us, output_id
from stream_app.rules.medical import Entry
from stream_app.rules.status import Death
from stream_app.settings import RuleParams

RULE = "POST_DEATH_ACTIVITY"
#: occurred_at is the settlement's settled_at, written in China Standard Time.
_CST_SECONDS = 8 * 3600


def warnings(
    person_id: str,
    entries: Iterable[Entry],
    death: Death,
    params: RuleParams,
    *,
    region_code: str,
) -> tuple[PostDeathWarning, ...]:
    """A warning for each settlement (not reversed) whose service date is after died_on + grace.

    ``entries`` are window entries of the person (all of them when the death has just come
    into force; the one just placed when a settlement arrives). ``region_code`` is used
    only when the death in force does not carry its own (a death kept by an older worker).
    """
    try:
        last_day = death.died_on + timedelta(days=params.post_death_grace_days)
    except OverflowError:  # a grace beyond the calendar: no service date can be later
        return ()
    return tuple(
        PostDeathWarning(
            warning_id=output_id(RULE, person_id, entry.event_id, death.event_id),
            rule=RULE,
            person_id=person_id,
            region_code=death.region_code or region_code,
            household_id=entry.household_id,
            caused_by=entry.event_id,
            occurred_at=from_us(entry.settled_us, _CST_SECONDS),
            evidence=(entry.event_id, death.event_id),
            died_on=death.died_on,
            service_on=entry.service_on,
            self_pay=money(entry.self_pay_fen),
        )
        for entry in entries
        if not entry.reversed and entry.service_on > last_day
    )
