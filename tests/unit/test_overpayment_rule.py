"""R9: every DEATH and DECEASED_ENROLLMENT stop carries the months paid after the death.

overpaid_months counts the first days of a month d with
max(stop effective_on, episode effective_on) <= d <= max(registration date in +08:00,
episode effective_on); overpaid_amount is that times the episode's monthly amount.
"""

from __future__ import annotations

from datetime import date

import msgspec
import pytest

from stream_app.records import PaymentResume, PaymentStop, encode
from stream_app.rules import status
from stream_app.rules.status import overpaid_months
from stream_app.settings import RuleParams
from tests.builders import death, disability, enrollment, person, withdrawal

P = person(9)
PARAMS = RuleParams()


def run(records, state=None):
    outputs = []
    for rec in records:
        result = status.step(state, rec, params=PARAMS)
        state = result.state
        outputs.extend(result.outputs)
    return state, outputs


def stops(outputs):
    return [
        (o.program, o.reason, o.effective_on, o.overpaid_months, o.overpaid_amount)
        for o in outputs
        if isinstance(o, PaymentStop)
    ]


def test_overpayment_contract_example():
    # Died 2020-01-10, registered 2020-12-03, dibao 900.00 since 2018.
    _, outputs = run(
        [
            enrollment("e1", P, "dibao", "active", "2018-01-01", amount="900.00"),
            death("d1", P, "2020-01-10", registered_at="2020-12-03T10:00:00+08:00"),
        ]
    )
    assert stops(outputs) == [("dibao", "DEATH", date(2020, 2, 1), 11, "9900.00")]


@pytest.mark.parametrize(
    ("registered_at", "months"),
    [
        ("2020-03-01T08:00:00+08:00", 0),  # registered the day of death
        ("2020-03-31T23:59:00+08:00", 0),  # still in the month of death
        ("2020-04-01T00:00:00+08:00", 1),  # April was paid on its first day
        ("2020-06-30T12:00:00+08:00", 3),  # April, May, June
    ],
)
def test_overpayment_death_on_the_first_of_a_month(registered_at, months):
    _, outputs = run(
        [
            enrollment("e1", P, "tekun", "active", "2015-05-01", amount="1200"),
            death("d1", P, "2020-03-01", registered_at=registered_at),
        ]
    )
    amount = f"{1200 * months}.00"
    assert stops(outputs) == [("tekun", "DEATH", date(2020, 4, 1), months, amount)]


def test_overpayment_registration_in_the_month_of_death_is_zero():
    _, outputs = run(
        [
            enrollment("e1", P, "dibao", "active", "2018-01-01", amount="900.00"),
            death("d1", P, "2020-03-10", registered_at="2020-03-28T09:00:00+08:00"),
        ]
    )
    assert stops(outputs) == [("dibao", "DEATH", date(2020, 4, 1), 0, "0.00")]


@pytest.mark.parametrize(
    ("registered_at", "months"),
    [
        ("2020-03-31T20:00:00-04:00", 1),  # 2020-04-01 08:00 in +08:00: April counts
        ("2020-03-31T15:59:00Z", 0),  # 2020-03-31 23:59 in +08:00
        ("2020-03-31T16:00:00Z", 1),  # 2020-04-01 00:00 in +08:00
    ],
)
def test_overpayment_registration_date_is_read_in_china_standard_time(registered_at, months):
    _, outputs = run(
        [
            enrollment("e1", P, "dibao", "active", "2018-01-01", amount="500"),
            death("d1", P, "2020-03-10", registered_at=registered_at),
        ]
    )
    assert stops(outputs)[0][3:] == (months, f"{500 * months}.00")


def test_overpayment_across_a_year_end():
    _, outputs = run(
        [
            enrollment("e1", P, "dibao", "active", "2018-01-01", amount="1000.50"),
            death("d1", P, "2019-12-31", registered_at="2021-02-10T09:00:00+08:00"),
        ]
    )
    # January 2020 .. February 2021: 14 months
    assert stops(outputs) == [("dibao", "DEATH", date(2020, 1, 1), 14, "14007.00")]


@pytest.mark.parametrize(
    ("enrolled_on", "months"),
    [
        ("2020-03-01", 4),  # March..June: enrolled after the death, before its registration
        ("2020-03-15", 3),  # April..June: the first payment day is April 1
        ("2020-09-01", 1),  # enrolled after the registration: paid once, on its first day
        ("2020-09-15", 0),  # ... and not yet paid at all
    ],
)
def test_overpayment_of_a_late_enrollment(enrolled_on, months):
    # Died 2020-01-10, registered 2020-06-15; the roll arrives after the death.
    _, outputs = run(
        [
            death("d1", P, "2020-01-10", registered_at="2020-06-15T09:00:00+08:00"),
            enrollment("e1", P, "dibao", "active", enrolled_on, amount="800"),
        ]
    )
    assert stops(outputs) == [
        ("dibao", "DECEASED_ENROLLMENT", date(2020, 2, 1), months, f"{800 * months}.00")
    ]


def test_overpayment_late_enrollment_arriving_first_gives_the_same_stop():
    records = [
        death("d1", P, "2020-01-10", registered_at="2020-06-15T09:00:00+08:00"),
        enrollment("e1", P, "dibao", "active", "2020-03-01", amount="800"),
    ]
    _, death_first = run(records)
    _, enrollment_first = run(records[::-1])
    assert [encode(o) for o in death_first] == [encode(o) for o in enrollment_first]


def test_overpayment_uses_the_amount_of_a_second_active_record_before_the_stop():
    _, outputs = run(
        [
            enrollment("e1", P, "dibao", "active", "2018-01-01", amount="900.00"),
            enrollment("e1b", P, "dibao", "active", "2019-01-01", amount="1050.00"),  # same episode
            death("d1", P, "2020-01-10", registered_at="2020-12-03T10:00:00+08:00"),
        ]
    )
    # The episode began in 2018 (its first active record); the amount is the current one.
    assert stops(outputs) == [("dibao", "DEATH", date(2020, 2, 1), 11, "11550.00")]


def test_overpayment_of_a_sent_stop_is_not_changed_by_a_later_amount():
    state, outputs = run(
        [
            enrollment("e1", P, "dibao", "active", "2018-01-01", amount="900.00"),
            death("d1", P, "2020-01-10", registered_at="2020-12-03T10:00:00+08:00"),
        ]
    )
    _, later = run([enrollment("e1b", P, "dibao", "active", "2018-01-01", amount="1050.00")], state)
    assert stops(outputs) == [("dibao", "DEATH", date(2020, 2, 1), 11, "9900.00")]
    assert later == []  # the stop is not sent again with other figures


def test_overpayment_only_on_death_stops_and_never_on_resumes():
    _, outputs = run(
        [
            enrollment("e1", P, "disability_living", "active", "2016-01-01", amount="300"),
            disability("c1", P, "revoked", "2019-10-20"),
            death("d1", P, "2020-01-10", registered_at="2020-05-03T10:00:00+08:00"),
            withdrawal("w1", P, "d1"),
        ]
    )
    assert stops(outputs) == [
        ("disability_living", "DISABILITY_REVOKED", date(2019, 11, 1), None, None),
        ("disability_living", "DEATH", date(2020, 2, 1), 4, "1200.00"),
    ]
    revoked, _ = (o for o in outputs if isinstance(o, PaymentStop))
    assert b"overpaid" not in encode(revoked)
    [resume] = [o for o in outputs if isinstance(o, PaymentResume)]
    assert b"overpaid" not in encode(resume)


def test_overpayment_after_withdrawal_uses_the_new_deaths_registration():
    _, outputs = run(
        [
            enrollment("e1", P, "dibao", "active", "2018-01-01", amount="900"),
            death("d1", P, "2020-01-10", registered_at="2020-12-03T10:00:00+08:00"),
            withdrawal("w1", P, "d1"),
            death("d2", P, "2021-01-05", registered_at="2021-03-02T10:00:00+08:00"),
        ]
    )
    assert stops(outputs)[-1] == ("dibao", "DEATH", date(2021, 2, 1), 2, "1800.00")


@pytest.mark.parametrize(
    ("stop_on", "episode_on", "registered_on", "months"),
    [
        (date(2020, 2, 1), date(2018, 1, 1), date(2020, 12, 3), 11),
        (date(2020, 2, 1), date(2018, 1, 1), date(2020, 2, 1), 1),
        (date(2020, 2, 1), date(2018, 1, 1), date(2020, 1, 31), 0),
        (date(2020, 2, 1), date(2018, 1, 1), date(2019, 5, 1), 0),  # registered before death
        (date(2020, 2, 1), date(2020, 2, 2), date(2020, 3, 1), 1),
        (date(2020, 2, 1), date(2021, 1, 1), date(2020, 3, 1), 1),
    ],
)
def test_overpaid_months_at_its_edges(stop_on, episode_on, registered_on, months):
    assert overpaid_months(stop_on, episode_on, registered_on) == months


def test_overpayment_on_a_death_kept_in_state_from_before_r9():
    # A worker from before R9 stored the death as [event_id, died_on]; it still decodes, and
    # a later roll is stopped with the months up to the episode's start (a lower bound).
    old = msgspec.msgpack.encode([["d1", "2020-01-10"], None, [], []])
    state = msgspec.msgpack.decode(old, type=status.StatusState)
    assert (state.death.registered_on, state.death.region_code) == (None, None)
    _, outputs = run([enrollment("e1", P, "dibao", "active", "2020-03-01", amount="800")], state)
    assert stops(outputs) == [("dibao", "DECEASED_ENROLLMENT", date(2020, 2, 1), 1, "800.00")]
