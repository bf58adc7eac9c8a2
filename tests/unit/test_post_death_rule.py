"""R4 POST_DEATH_ACTIVITY through the per-record processor (the worker's path, on dicts).

A settlement (not a reversal, not reversed) with a service date later than died_on
plus the grace period of the death in force warns once per (settlement, death
registration), whichever of the two arrives first.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone

from stream_app.processing import DictState, Processor
from stream_app.records import PostDeathWarning, encode
from stream_app.rules import post_death
from stream_app.rules.medical import Entry
from stream_app.rules.status import Death
from stream_app.settings import RuleParams, load
from tests.builders import death_value, enrollment_value, person, settlement_value

P = person(31)
OTHER_REGION = "330183105"


def bill(eid: str, service_on: str | None, self_pay: str = "812.40", **extra):
    at = extra.pop("at", f"{service_on or '2017-10-01'}T09:00:00+08:00")
    if service_on is not None:
        extra["service_on"] = service_on
    return ("MEDICAL_SETTLEMENTS", settlement_value(eid, P, at, self_pay, **extra))


def reversal(eid: str, reverses: str, at: str = "2017-12-01T09:00:00+08:00"):
    value = {
        "event_id": eid,
        "person_id": P,
        "region_code": "330183004",
        "settled_at": at,
        "kind": "reversal",
        "reverses": reverses,
    }
    return ("MEDICAL_SETTLEMENTS", value)


def died(eid: str, died_on: str, **extra):
    return ("DEATH_REGISTRATIONS", death_value(eid, P, died_on, **extra))


def withdrawn(eid: str, withdraws: str):
    value = {**death_value(eid, P, "2017-01-01"), "status": "withdrawn", "withdraws": withdraws}
    return ("DEATH_REGISTRATIONS", value)


def feed(records, env=None):
    settings = load(env or {})
    processor = Processor(settings, DictState(), DictState())
    outputs = []
    for offset, (logical, value) in enumerate(records):
        raw = json.dumps(value).encode()
        processed = processor.process(settings.topic(logical), 0, offset, value["person_id"].encode(), raw)
        outputs.extend(e.value for e in processed.emits)
    return outputs


def post_death_warnings(outputs) -> list[PostDeathWarning]:
    return [o for o in outputs if isinstance(o, PostDeathWarning)]


def summary(outputs):
    return [
        (w.caused_by, w.evidence, w.died_on, w.service_on, w.self_pay) for w in post_death_warnings(outputs)
    ]


def test_post_death_bill_after_the_death_warns_with_the_contract_fields():
    outputs = feed([died("d1", "2017-09-10"), bill("b1", "2017-10-01", household_id="HH-1")])
    [w] = post_death_warnings(outputs)
    assert (w.rule, w.person_id, w.caused_by, w.evidence) == ("POST_DEATH_ACTIVITY", P, "b1", ("b1", "d1"))
    assert (w.died_on, w.service_on, w.self_pay, w.household_id) == (
        date(2017, 9, 10),
        date(2017, 10, 1),
        "812.40",
        "HH-1",
    )
    # occurred_at: the settlement's settled_at (its event time), written in +08:00
    assert json.loads(encode(w))["occurred_at"] == "2017-10-01T09:00:00+08:00"


def test_post_death_bill_first_then_death_gives_the_same_warning():
    records = [bill("b1", "2017-10-01"), died("d1", "2017-09-10")]
    bill_first = [encode(w) for w in post_death_warnings(feed(records))]
    death_first = [encode(w) for w in post_death_warnings(feed(records[::-1]))]
    assert len(bill_first) == 1 and bill_first == death_first


def test_post_death_warning_reads_the_same_whatever_offset_the_bill_was_written_in():
    at = datetime(2017, 10, 1, 9, tzinfo=timezone(timedelta(hours=8))).astimezone(UTC)
    records = [bill("b1", "2017-10-01", at=at.isoformat()), died("d1", "2017-09-10")]
    [a] = post_death_warnings(feed(records))
    [b] = post_death_warnings(feed(records[::-1]))
    assert encode(a) == encode(b)
    assert json.loads(encode(a))["occurred_at"] == "2017-10-01T09:00:00+08:00"


def test_post_death_grace_day_boundary():
    outputs = feed(
        [
            died("d1", "2017-09-10"),
            bill("on-death-day", "2017-09-10"),
            bill("within-grace", "2017-09-11"),  # died_on + 1 day: not later than the grace
            bill("after-grace", "2017-09-12"),
        ]
    )
    assert [w.caused_by for w in post_death_warnings(outputs)] == ["after-grace"]


def test_post_death_grace_days_is_a_setting():
    records = [died("d1", "2017-09-10"), bill("b1", "2017-09-12"), bill("b2", "2017-09-20")]
    outputs = feed(records, {"STREAM_APP_POST_DEATH_GRACE_DAYS": "7"})
    assert [w.caused_by for w in post_death_warnings(outputs)] == ["b2"]
    outputs = feed(records, {"STREAM_APP_POST_DEATH_GRACE_DAYS": "0"})
    assert [w.caused_by for w in post_death_warnings(outputs)] == ["b1", "b2"]


def test_post_death_service_date_defaults_to_the_settlement_date():
    outputs = feed([bill("b1", None, at="2017-09-30T23:30:00+08:00"), died("d1", "2017-09-10")])
    assert summary(outputs) == [("b1", ("b1", "d1"), date(2017, 9, 10), date(2017, 9, 30), "812.40")]


def test_post_death_late_bill_for_care_before_death_does_not_warn():
    # Settled long after the death, but the care was given before it.
    outputs = feed([died("d1", "2017-09-10"), bill("b1", "2017-09-01", at="2017-11-20T09:00:00+08:00")])
    assert post_death_warnings(outputs) == []


def test_post_death_reversed_bill_does_not_warn_when_the_death_comes_later():
    outputs = feed([bill("b1", "2017-10-01"), reversal("r1", "b1"), died("d1", "2017-09-10")])
    assert post_death_warnings(outputs) == []


def test_post_death_reversal_after_the_warning_does_not_unsend_it():
    outputs = feed([died("d1", "2017-09-10"), bill("b1", "2017-10-01"), reversal("r1", "b1")])
    assert [w.caused_by for w in post_death_warnings(outputs)] == ["b1"]
    outputs = feed([bill("b1", "2017-10-01"), died("d1", "2017-09-10"), reversal("r1", "b1")])
    assert [w.caused_by for w in post_death_warnings(outputs)] == ["b1"]


def test_post_death_warns_once_per_settlement_and_death_registration():
    outputs = feed(
        [
            bill("b1", "2017-10-01"),
            died("d1", "2017-09-10"),
            bill("b1", "2017-10-01"),  # the settlement redelivered
            died("d1", "2017-09-10"),  # the death redelivered
            died("d2", "2017-09-10"),  # a second registration while one is in force: nothing
            bill("b2", "2017-10-05"),
        ]
    )
    assert summary(outputs) == [
        ("b1", ("b1", "d1"), date(2017, 9, 10), date(2017, 10, 1), "812.40"),
        ("b2", ("b2", "d1"), date(2017, 9, 10), date(2017, 10, 5), "812.40"),
    ]


def test_post_death_withdrawn_death_keeps_its_warnings_and_a_new_death_warns_anew():
    outputs = feed(
        [
            died("d1", "2017-09-10"),
            bill("b1", "2017-10-01"),
            withdrawn("w1", "d1"),
            bill("b2", "2017-10-02"),  # no death in force: nothing
            died("d2", "2017-09-20"),  # a new death: the window's bills are checked again
        ]
    )
    assert [w.evidence for w in post_death_warnings(outputs)] == [("b1", "d1"), ("b1", "d2"), ("b2", "d2")]
    assert len({w.warning_id for w in post_death_warnings(outputs)}) == 3


def test_post_death_region_is_the_death_registrations():
    outputs = feed(
        [
            bill("b1", "2017-10-01", region_code=OTHER_REGION),
            died("d1", "2017-09-10", region_code="330183003"),
        ]
    )
    [w] = post_death_warnings(outputs)
    assert w.region_code == "330183003"


def test_post_death_bill_of_another_person_is_not_checked():
    other = person(32)
    value = settlement_value("b1", other, "2017-10-01T09:00:00+08:00", "100", service_on="2017-10-01")
    outputs = feed([died("d1", "2017-09-10"), ("MEDICAL_SETTLEMENTS", value)])
    assert post_death_warnings(outputs) == []


def test_post_death_does_not_change_the_other_outputs_of_a_death():
    outputs = feed(
        [
            ("SUBSIDY_ENROLLMENTS", enrollment_value("e1", P, "tekun", "active", "2015-05-01", "1200")),
            bill("b1", "2017-10-01"),
            died("d1", "2017-09-10", registered_at="2018-01-15T10:00:00+08:00"),
        ]
    )
    kinds = [type(o).__name__ for o in outputs]
    assert kinds == ["PaymentStop", "PostDeathWarning"]
    assert (outputs[0].overpaid_months, outputs[0].overpaid_amount) == (4, "4800.00")


def test_post_death_warnings_function_skips_reversed_entries_and_survives_a_huge_grace():
    death = Death("d1", date(2017, 9, 10), date(2017, 9, 12), "330183004")
    entries = [
        Entry(0, "kept", 100, date(2017, 10, 1)),
        Entry(1, "reversed", 100, date(2017, 10, 1), reversed=True),
    ]
    found = post_death.warnings(P, entries, death, RuleParams(), region_code="330183105")
    assert [w.caused_by for w in found] == ["kept"]
    assert (
        post_death.warnings(P, entries, death, RuleParams(post_death_grace_days=10**9), region_code="x") == ()
    )
