"""R1 MEDICAL_SELF_PAY and R8's suggested amount, on the pure rule."""

from __future__ import annotations

from datetime import date

from stream_app.records import SelfPayWarning
from stream_app.rules import medical
from stream_app.settings import AssistanceStandard, RuleParams
from tests.builders import person, reversal, settlement

P = person(1)
PARAMS = RuleParams()


def run(records, params=PARAMS, hardship=False):
    state, outputs, outcomes = None, [], []
    for rec in records:
        result = medical.step(state, rec, hardship_holder=hardship, params=params)
        state = result.state
        outputs.extend(result.outputs)
        outcomes.append(result.outcome)
    return state, outputs, outcomes


def test_medical_self_pay_warns_once_when_sum_reaches_first_tier():
    _, outputs, _ = run(
        [
            settlement("s1", P, "2017-01-20T09:30:00+08:00", "8000"),
            settlement("s2", P, "2017-02-14T10:00:00+08:00", "12000"),
            settlement("s3", P, "2017-03-20T15:12:00+08:00", "10000"),  # exactly 30000: fires
            settlement("s4", P, "2017-04-01T15:12:00+08:00", "1000"),
        ]
    )
    assert len(outputs) == 1
    w = outputs[0]
    assert isinstance(w, SelfPayWarning)
    assert (w.rule, w.tier, w.rolling_self_pay, w.caused_by) == (
        "MEDICAL_SELF_PAY",
        "30000.00",
        "30000.00",
        "s3",
    )
    assert w.evidence == ("s1", "s2", "s3")
    assert (w.window_start, w.window_end) == (date(2016, 3, 20), date(2017, 3, 20))
    assert w.suggested_amount == "10000.00"  # 0.5 x (30000 - 10000)
    assert w.occurred_at.isoformat() == "2017-03-20T15:12:00+08:00"


def test_medical_self_pay_one_warning_with_highest_tier_when_both_crossed():
    _, outputs, _ = run([settlement("big", P, "2017-03-08T14:00:00+08:00", "80000")])
    assert [(w.tier, w.rolling_self_pay, w.suggested_amount) for w in outputs] == [
        ("50000.00", "80000.00", "30000.00")  # capped at 30000
    ]


def test_medical_self_pay_duplicate_delivery_counts_once():
    s = settlement("s1", P, "2017-03-08T14:00:00+08:00", "20000")
    state, outputs, outcomes = run([s, s, s])
    assert outcomes == ["counted", "duplicate", "duplicate"]
    assert state.rolling_fen == 2_000_000 and outputs == []


def test_medical_self_pay_reversal_rearms_and_fires_again():
    _, outputs, outcomes = run(
        [
            settlement("a", P, "2017-01-01T09:00:00+08:00", "31000"),
            reversal("a-r", P, "2017-01-02T09:00:00+08:00", "a"),
            settlement("b", P, "2017-01-03T09:00:00+08:00", "30000"),
        ]
    )
    assert outcomes == ["counted", "reversed", "counted"]
    assert [(w.caused_by, w.tier) for w in outputs] == [("a", "30000.00"), ("b", "30000.00")]
    assert outputs[0].warning_id != outputs[1].warning_id
    assert outputs[1].evidence == ("b",)  # the reversed settlement no longer counts


def test_medical_self_pay_reversal_of_unknown_settlement_changes_nothing():
    first = settlement("a", P, "2017-01-01T09:00:00+08:00", "100")
    state, _, outcomes = run([first, reversal("x-r", P, "2017-01-02T09:00:00+08:00", "nope")])
    assert outcomes == ["counted", "unknown_reversal"]
    assert state.rolling_fen == 10_000


def test_medical_self_pay_redelivered_original_after_reversal_stays_reversed():
    s = settlement("a", P, "2017-01-01T09:00:00+08:00", "40000")
    state, outputs, outcomes = run([s, reversal("a-r", P, "2017-01-02T09:00:00+08:00", "a"), s])
    assert outcomes == ["counted", "reversed", "duplicate"]
    assert state.rolling_fen == 0 and len(outputs) == 1


def test_medical_self_pay_window_moves_with_newest_settlement_and_prunes():
    state, outputs, _ = run(
        [
            settlement("old", P, "2016-01-01T09:00:00+08:00", "25000"),
            settlement("new", P, "2017-01-01T09:00:00+08:00", "10000"),  # 365 days later: old left
        ]
    )
    assert [e.event_id for e in state.entries] == ["new"]
    assert state.rolling_fen == 1_000_000 and outputs == []


def test_medical_self_pay_window_is_365_days_ending_at_newest():
    # 2016 is a leap year: 2016-01-02 09:00 is 365 days before 2017-01-01 09:00 -> outside.
    state, _, _ = run(
        [
            settlement("edge", P, "2016-01-02T09:00:00+08:00", "1"),
            settlement("in", P, "2016-01-02T09:00:01+08:00", "2"),
            settlement("newest", P, "2017-01-01T09:00:00+08:00", "4"),
        ]
    )
    assert [e.event_id for e in state.entries] == ["in", "newest"]


def test_medical_self_pay_late_settlement_is_placed_in_window():
    state, outputs, outcomes = run(
        [
            settlement("june", P, "2017-06-01T09:00:00+08:00", "20000"),
            settlement("march", P, "2017-03-01T09:00:00+08:00", "15000"),  # arrives late, in window
            settlement("ancient", P, "2015-03-01T09:00:00+08:00", "99999"),  # older than the window
        ]
    )
    assert outcomes == ["counted", "counted", "outside_window"]
    assert [e.event_id for e in state.entries] == ["march", "june"]
    assert [(w.caused_by, w.rolling_self_pay, w.window_end) for w in outputs] == [
        ("march", "35000.00", date(2017, 6, 1))
    ]


def test_medical_self_pay_rearm_when_window_drops_old_bills():
    _, outputs, _ = run(
        [
            settlement("a", P, "2016-01-01T09:00:00+08:00", "30000"),
            settlement("b", P, "2017-02-01T09:00:00+08:00", "1000"),  # a leaves: sum 1000, re-arm
            settlement("c", P, "2017-03-01T09:00:00+08:00", "29000"),
        ]
    )
    assert [(w.caused_by, w.tier) for w in outputs] == [("a", "30000.00"), ("c", "30000.00")]


def test_medical_self_pay_money_is_exact_decimal():
    records = [settlement(f"s{i}", P, f"2017-01-01T09:00:{i:02d}+08:00", "0.10") for i in range(30)]
    state, _, _ = run(records)
    assert state.rolling_fen == 300  # 30 x 0.10 = 3.00 exactly, no float drift


def test_medical_self_pay_ids_are_stable_and_depend_on_cause():
    recs = [settlement("s", P, "2017-01-01T09:00:00+08:00", "35000")]
    assert run(recs)[1][0].warning_id == run(recs)[1][0].warning_id
    other = [settlement("t", P, "2017-01-01T09:00:00+08:00", "35000")]
    assert run(other)[1][0].warning_id != run(recs)[1][0].warning_id


def test_medical_self_pay_tiers_and_standard_are_parameters():
    params = RuleParams(medical_tiers_fen=(2_000_000, 4_000_000), standard=AssistanceStandard(0, 1, 100))
    _, outputs, _ = run([settlement("s", P, "2017-01-01T09:00:00+08:00", "25000")], params=params)
    assert [(w.tier, w.suggested_amount) for w in outputs] == [("20000.00", "1.00")]


def test_medical_self_pay_carries_household_and_hardship():
    rec = settlement("s", P, "2017-01-01T09:00:00+08:00", "30000", household_id="HH-1")
    _, outputs, _ = run([rec], hardship=True)
    assert outputs[0].household_id == "HH-1" and outputs[0].hardship_holder is True


def test_suggested_amount_rounds_down_to_the_fen():
    standard = AssistanceStandard(
        deductible_fen=0, rate=__import__("decimal").Decimal("0.333"), cap_fen=10**9
    )
    assert medical.suggested_fen(1001, standard) == 333  # 333.333 fen -> 333
