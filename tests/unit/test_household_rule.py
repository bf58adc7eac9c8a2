"""R7 HOUSEHOLD_SELF_PAY and R8's figures for it, on the pure rule (re-keyed records in, warnings out)."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

from jsonschema import Draft202012Validator, FormatChecker

from stream_app.processing import _route, stamped
from stream_app.records import SelfPayWarning, encode
from stream_app.rules import household, medical, window
from stream_app.rules.common import output_id
from stream_app.settings import RuleParams
from tests.builders import person, reversal, settlement

WIFE, CHILD, HUSBAND = person(11), person(12), person(13)
HH = "HH-SHAO"
PARAMS = RuleParams()


def rekey(rec, held=None, hardship=False):
    return household.rekeyed(rec, held, hardship_holder=hardship)


def bill(eid, who, at, self_pay, hh=HH, hardship=False, **extra):
    return rekey(settlement(eid, who, at, self_pay, household_id=hh, **extra), hardship=hardship)


def run(records, params=PARAMS):
    state, outputs, outcomes = None, [], []
    for rec in records:
        result = household.step(state, rec, params=params)
        state = result.state
        outputs.extend(result.outputs)
        outcomes.append(result.outcome)
    return state, outputs, outcomes


def test_household_self_pay_members_cross_a_tier_together_while_none_crosses_alone():
    # 老婆看完孩子看, 孩子看完我看: 12,000 + 10,000 + 9,000 = 31,000 for the household.
    _, outputs, _ = run(
        [
            bill("yb-1", WIFE, "2017-01-20T09:30:00+08:00", "12000"),
            bill("yb-2", CHILD, "2017-03-02T10:00:00+08:00", "10000"),
            bill("yb-3", HUSBAND, "2017-05-11T15:12:00+08:00", "9000"),
        ]
    )
    assert len(outputs) == 1
    w = outputs[0]
    assert isinstance(w, SelfPayWarning)
    assert (w.rule, w.household_id, w.person_id, w.caused_by) == ("HOUSEHOLD_SELF_PAY", HH, HUSBAND, "yb-3")
    assert (w.tier, w.rolling_self_pay, w.suggested_amount) == ("30000.00", "31000.00", "10500.00")
    assert w.members == tuple(sorted((WIFE, CHILD, HUSBAND)))
    assert w.evidence == ("yb-1", "yb-2", "yb-3")
    assert (w.window_start, w.window_end) == (date(2016, 5, 11), date(2017, 5, 11))
    assert w.occurred_at.isoformat() == "2017-05-11T15:12:00+08:00"
    assert w.warning_id == output_id("HOUSEHOLD_SELF_PAY", HH, "yb-3", "3000000")
    # Keyed by household on the warnings topic, not by the member.
    assert _route(w).key == HH.encode() and _route(w).topic == "ASSISTANCE_WARNINGS"


def test_household_self_pay_suggested_amount_is_capped():
    # Shao's wife alone: 80,000 of self-pay gives (80,000 - 10,000) x 0.5 = 35,000, capped at 30,000.
    _, outputs, _ = run([bill("yb-1", WIFE, "2017-01-20T09:30:00+08:00", "80000")])
    assert [(w.tier, w.suggested_amount, w.members) for w in outputs] == [("50000.00", "30000.00", (WIFE,))]


def test_household_self_pay_redelivered_rekeyed_record_counts_once():
    first = bill("yb-1", WIFE, "2017-01-20T09:30:00+08:00", "20000")
    again = bill("yb-2", CHILD, "2017-02-20T09:30:00+08:00", "9000")
    state, outputs, outcomes = run([first, again, first, again])
    assert outcomes == ["counted", "counted", "duplicate", "duplicate"]
    assert state.rolling_fen == 2_900_000 and outputs == []


def test_household_self_pay_reversal_from_another_member_rearms_and_fires_again():
    wife_bill = settlement("yb-1", WIFE, "2017-01-20T09:30:00+08:00", "20000", household_id=HH)
    cancel = reversal("yb-1r", WIFE, "2017-02-01T09:00:00+08:00", "yb-1")  # no household_id on it
    held = medical.step(None, wife_bill, hardship_holder=False, params=PARAMS).state
    rekeyed_reversal = rekey(cancel, window.find(held, "yb-1"))
    assert rekeyed_reversal is not None and rekeyed_reversal.household_id == HH
    _, outputs, outcomes = run(
        [
            rekey(wife_bill),
            bill("yb-2", CHILD, "2017-01-25T10:00:00+08:00", "15000"),  # 35,000: fires 30,000
            rekeyed_reversal,  # 15,000: re-arms 30,000
            bill("yb-3", HUSBAND, "2017-03-01T10:00:00+08:00", "16000"),  # 31,000: fires again
        ]
    )
    assert outcomes == ["counted", "counted", "reversed", "counted"]
    assert [(w.caused_by, w.tier, w.rolling_self_pay, w.members) for w in outputs] == [
        ("yb-2", "30000.00", "35000.00", tuple(sorted((WIFE, CHILD)))),
        ("yb-3", "30000.00", "31000.00", tuple(sorted((CHILD, HUSBAND)))),  # the wife's bill no longer counts
    ]
    assert outputs[1].evidence == ("yb-2", "yb-3")


def test_household_self_pay_reversal_of_unknown_settlement_changes_nothing():
    state, _, _ = run([bill("yb-1", WIFE, "2017-01-20T09:30:00+08:00", "100")])
    cancel = rekey(reversal("yb-9r", CHILD, "2017-02-01T09:00:00+08:00", "yb-9"), None)
    assert cancel is None  # no household known for it: nothing to send
    cancel = household.HouseholdSettlement(
        household_id=HH,
        person_id=CHILD,
        event_id="yb-9r",
        region_code="330183004",
        settled_at=datetime.fromisoformat("2017-02-01T09:00:00+08:00"),
        kind="reversal",
        reverses="yb-9",
    )
    result = household.step(state, cancel, params=PARAMS)
    assert result.state is state and result.outputs == () and result.outcome == "unknown_reversal"


def test_household_self_pay_window_is_365_days_ending_at_newest_of_any_member():
    _, outputs, _ = run(
        [
            bill("yb-1", WIFE, "2016-03-01T10:00:00+08:00", "20000"),
            # Exactly 365 days later: yb-1 is out of the window (it ends at the newest settled_at).
            bill("yb-2", CHILD, "2017-03-01T10:00:00+08:00", "20000"),
            bill("yb-3", HUSBAND, "2016-03-02T10:00:00+08:00", "10000"),  # late, still inside
        ]
    )
    assert [(w.caused_by, w.rolling_self_pay, w.members) for w in outputs] == [
        ("yb-3", "30000.00", tuple(sorted((CHILD, HUSBAND))))
    ]


def test_household_self_pay_hardship_holder_is_each_members_latest_settlement_in_window():
    # The wife held dibao at her first bill but not at her latest: she does not make it true.
    _, outputs, _ = run(
        [
            bill("yb-1", WIFE, "2017-01-20T09:30:00+08:00", "5000", hardship=True),
            bill("yb-2", WIFE, "2017-02-20T09:30:00+08:00", "5000", hardship=False),
            bill("yb-3", CHILD, "2017-03-20T09:30:00+08:00", "20000", hardship=False),
        ]
    )
    assert [w.hardship_holder for w in outputs] == [False]
    # The child held tekun at his (latest) bill: true for the household.
    _, outputs, _ = run(
        [
            bill("yb-1", WIFE, "2017-01-20T09:30:00+08:00", "10000"),
            bill("yb-2", CHILD, "2017-03-20T09:30:00+08:00", "20000", hardship=True),
        ]
    )
    assert [w.hardship_holder for w in outputs] == [True]


def test_household_self_pay_uses_household_tiers_not_medical_ones():
    params = RuleParams(medical_tiers_fen=(100,), household_tiers_fen=(2_000_000,))
    _, outputs, _ = run([bill("yb-1", WIFE, "2017-01-20T09:30:00+08:00", "20000")], params=params)
    assert [w.tier for w in outputs] == ["20000.00"]


def test_household_self_pay_settlement_without_household_is_not_rekeyed():
    assert rekey(settlement("yb-1", WIFE, "2017-01-20T09:30:00+08:00", "20000")) is None
    rekeyed = bill(
        "yb-1", WIFE, "2017-01-20T09:30:00+08:00", "123.45", hardship=True, service_on="2017-01-18"
    )
    assert (rekeyed.household_id, rekeyed.person_id, rekeyed.self_pay_fen) == (HH, WIFE, 12345)
    assert (rekeyed.service_on, rekeyed.hardship_holder, rekeyed.kind) == (
        date(2017, 1, 18),
        True,
        "settlement",
    )


def test_household_and_person_windows_are_the_same_function():
    # One member only: the household's window and tiers follow the person's exactly.
    records = [
        settlement("yb-1", WIFE, "2017-01-20T09:30:00+08:00", "20000", household_id=HH),
        settlement("yb-2", WIFE, "2017-02-20T09:30:00+08:00", "15000", household_id=HH),
        reversal("yb-1r", WIFE, "2017-03-01T09:00:00+08:00", "yb-1"),
        settlement("yb-3", WIFE, "2018-02-25T09:30:00+08:00", "40000", household_id=HH),
    ]
    person_state, hh_state, person_warnings, hh_warnings = None, None, [], []
    for rec in records:
        person_step = medical.step(person_state, rec, hardship_holder=False, params=PARAMS)
        hh_step = household.step(
            hh_state, rekey(rec, window.find(person_state, rec.reverses or "")), params=PARAMS
        )
        person_state, hh_state = person_step.state, hh_step.state
        assert (person_step.outcome, hh_state.rolling_fen) == (hh_step.outcome, person_state.rolling_fen)
        person_warnings += [
            (w.caused_by, w.tier, w.rolling_self_pay, w.window_start) for w in person_step.outputs
        ]
        hh_warnings += [(w.caused_by, w.tier, w.rolling_self_pay, w.window_start) for w in hh_step.outputs]
    assert person_warnings == hh_warnings and len(hh_warnings) == 2


def test_household_self_pay_warning_as_sent_is_valid_against_the_published_schema():
    _, outputs, _ = run(
        [
            bill("yb-1", WIFE, "2017-01-20T09:30:00+08:00", "12000", hardship=True),
            bill("yb-2", CHILD, "2017-03-02T10:00:00+08:00", "40000"),
        ]
    )
    schema = json.loads((Path(__file__).parents[2] / "schemas" / "assistance.warnings.v1.json").read_text())
    sent = json.loads(encode(stamped(outputs[0], "2017-03-02T02:00:01.000+00:00")))
    Draft202012Validator(schema, format_checker=FormatChecker()).validate(sent)
    assert (sent["rule"], sent["household_id"], sent["tier"], sent["hardship_holder"]) == (
        "HOUSEHOLD_SELF_PAY",
        HH,
        "50000.00",
        True,
    )
    assert sent["members"] == sorted((WIFE, CHILD))
