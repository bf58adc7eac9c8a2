"""Status rules R2 (death), R3 (disability), R5 (withdrawn death), R6 (duplicates)."""

from __future__ import annotations

from datetime import date

from stream_app.records import NursingEligibleWarning, PaymentResume, PaymentStop
from stream_app.rules import status
from stream_app.settings import RuleParams
from tests.builders import death, disability, enrollment, person, withdrawal

P = person(7)
PARAMS = RuleParams()


def run(records, state=None):
    outputs, outcomes = [], []
    for rec in records:
        result = status.step(state, rec, params=PARAMS)
        state = result.state
        outputs.extend(result.outputs)
        outcomes.append(result.outcome)
    return state, outputs, outcomes


def stops(outputs):
    return [(o.program, o.reason, o.effective_on, o.caused_by) for o in outputs if isinstance(o, PaymentStop)]


def test_death_stops_every_active_program_from_next_month():
    _, outputs, _ = run(
        [
            enrollment("e1", P, "dibao", "active", "2015-05-01"),
            enrollment("e2", P, "disability_living", "active", "2016-01-01"),
            death("d1", P, "2017-09-10"),
        ]
    )
    assert stops(outputs) == [
        ("dibao", "DEATH", date(2017, 10, 1), "d1"),
        ("disability_living", "DEATH", date(2017, 10, 1), "d1"),
    ]


def test_death_in_december_stops_from_january():
    _, outputs, _ = run([enrollment("e1", P, "tekun", "active", "2015-05-01"), death("d1", P, "2017-12-31")])
    assert stops(outputs) == [("tekun", "DEATH", date(2018, 1, 1), "d1")]


def test_enrollment_after_death_is_stopped_as_deceased_enrollment():
    _, outputs, _ = run([death("d1", P, "2017-09-10"), enrollment("e1", P, "dibao", "active", "2017-10-01")])
    assert stops(outputs) == [("dibao", "DECEASED_ENROLLMENT", date(2017, 10, 1), "e1")]


def test_late_roll_with_enrollment_before_death_still_stops_with_death_reason():
    _, outputs, _ = run([death("d1", P, "2017-09-10"), enrollment("e1", P, "dibao", "active", "2017-09-10")])
    assert stops(outputs) == [("dibao", "DEATH", date(2017, 10, 1), "d1")]


def test_stop_is_sent_once_per_episode_and_again_for_a_new_episode():
    _, outputs, _ = run(
        [
            enrollment("e1", P, "dibao", "active", "2015-01-01"),
            death("d1", P, "2017-09-10"),
            death("d2", P, "2017-09-11"),  # a second registration while one is in force: nothing
            enrollment("e1b", P, "dibao", "active", "2015-01-01", amount="900"),  # same episode
            enrollment("e3", P, "dibao", "ended", "2017-10-01"),
            enrollment("e4", P, "dibao", "active", "2017-11-01"),  # new episode after death
        ]
    )
    assert [(p, r, c) for p, r, _, c in stops(outputs)] == [
        ("dibao", "DEATH", "d1"),
        ("dibao", "DECEASED_ENROLLMENT", "e4"),
    ]


def test_redelivered_record_counts_once():
    e1 = enrollment("e1", P, "dibao", "active", "2015-01-01")
    _, outputs, outcomes = run(
        [e1, enrollment("e2", P, "dibao", "ended", "2016-01-01"), e1, death("d", P, "2017-01-01")]
    )
    assert outcomes[2] == "duplicate" and stops(outputs) == []


def test_revoked_certificate_stops_both_disability_subsidies_only():
    _, outputs, _ = run(
        [
            enrollment("e1", P, "disability_living", "active", "2016-01-01"),
            enrollment("e2", P, "disability_nursing", "active", "2016-01-01"),
            enrollment("e3", P, "dibao", "active", "2016-01-01"),
            disability("c1", P, "revoked", "2017-10-20"),
        ]
    )
    assert stops(outputs) == [
        ("disability_living", "DISABILITY_REVOKED", date(2017, 11, 1), "c1"),
        ("disability_nursing", "DISABILITY_REVOKED", date(2017, 11, 1), "c1"),
    ]


def test_expired_certificate_with_late_enrollment_still_stops():
    _, outputs, _ = run(
        [
            disability("c1", P, "expired", "2017-03-31"),
            enrollment("e1", P, "disability_living", "active", "2017-05-01"),
        ]
    )
    assert stops(outputs) == [("disability_living", "DISABILITY_REVOKED", date(2017, 4, 1), "c1")]


def test_level_change_to_three_stops_nursing_but_not_living():
    _, outputs, _ = run(
        [
            disability("c1", P, "certified", "2015-01-01", level=2),
            enrollment("e1", P, "disability_living", "active", "2016-01-01"),
            enrollment("e2", P, "disability_nursing", "active", "2016-01-01"),
            disability("c2", P, "certified", "2017-06-15", level=3),
        ]
    )
    assert stops(outputs) == [("disability_nursing", "DISABILITY_LEVEL_INELIGIBLE", date(2017, 7, 1), "c2")]


def test_nursing_eligible_warning_once_per_certification_episode():
    _, outputs, _ = run(
        [
            disability("c1", P, "certified", "2017-07-05", level=1),
            disability("c2", P, "certified", "2017-08-05", level=2),  # level change: same episode
            disability("c3", P, "revoked", "2017-09-01"),
            disability("c4", P, "certified", "2017-10-01", level=1),  # new episode
        ]
    )
    warnings = [o for o in outputs if isinstance(o, NursingEligibleWarning)]
    assert [(w.caused_by, w.level, w.rule) for w in warnings] == [
        ("c1", 1, "DISABILITY_NURSING_ELIGIBLE"),
        ("c4", 1, "DISABILITY_NURSING_ELIGIBLE"),
    ]
    assert warnings[0].evidence == ("c1",)


def test_nursing_eligible_not_sent_when_nursing_active_or_dead_or_level_three():
    for records in (
        [
            enrollment("e", P, "disability_nursing", "active", "2016-01-01"),
            disability("c", P, "certified", "2017-01-01", 1),
        ],
        [death("d", P, "2016-01-01"), disability("c", P, "certified", "2017-01-01", 2)],
        [disability("c", P, "certified", "2017-01-01", 3)],
    ):
        _, outputs, _ = run(records)
        assert not [o for o in outputs if isinstance(o, NursingEligibleWarning)]


def test_withdrawn_death_resumes_its_stops_from_the_stop_date():
    _, outputs, outcomes = run(
        [
            enrollment("e1", P, "dibao", "active", "2014-03-01"),
            enrollment("e2", P, "disability_living", "active", "2014-03-01"),
            disability("c1", P, "revoked", "2017-01-01"),
            death("d1", P, "2017-10-30"),
            withdrawal("w1", P, "d1"),
        ]
    )
    death_stops = {o.stop_id: o for o in outputs if isinstance(o, PaymentStop) and o.reason == "DEATH"}
    resumes = [o for o in outputs if isinstance(o, PaymentResume)]
    assert outcomes[-1] == "death_withdrawn"
    assert sorted(r.stop_id for r in resumes) == sorted(death_stops)  # not the disability stop
    for r in resumes:
        assert (r.reason, r.caused_by, r.effective_on) == ("DEATH_WITHDRAWN", "w1", date(2017, 11, 1))
        assert r.program == death_stops[r.stop_id].program


def test_withdrawal_of_something_else_changes_nothing():
    state, outputs, outcomes = run([death("d1", P, "2017-10-30"), withdrawal("w1", P, "d-other")])
    assert outcomes == ["death_registered", "ignored_withdrawal"]
    assert state.death.event_id == "d1" and outputs == []


def test_new_death_after_withdrawal_gives_new_stop_ids():
    _, outputs, _ = run(
        [
            enrollment("e1", P, "dibao", "active", "2014-03-01"),
            death("d1", P, "2017-10-30"),
            withdrawal("w1", P, "d1"),
            death("d2", P, "2018-02-03"),
        ]
    )
    stop_ids = [o.stop_id for o in outputs if isinstance(o, PaymentStop)]
    assert len(stop_ids) == 2 and len(set(stop_ids)) == 2
    assert stops(outputs)[-1] == ("dibao", "DEATH", date(2018, 3, 1), "d2")


def test_duplicate_assistance_warns_once_per_overlap():
    _, outputs, _ = run(
        [
            enrollment("e1", P, "dibao", "active", "2016-01-01"),
            enrollment("e2", P, "tekun", "active", "2017-01-01"),
            enrollment("e2b", P, "tekun", "active", "2017-01-01", amount="999"),  # same episode
        ]
    )
    dup = [o for o in outputs if getattr(o, "rule", None) == "DUPLICATE_ASSISTANCE"]
    assert [(w.programs, w.caused_by, w.evidence) for w in dup] == [(("dibao", "tekun"), "e2", ("e1", "e2"))]


def test_hardship_holder_is_active_dibao_or_tekun():
    state, _, _ = run([enrollment("e1", P, "tekun", "active", "2016-01-01")])
    assert state.hardship_holder
    state, _, _ = run([enrollment("e2", P, "tekun", "ended", "2017-01-01")], state)
    assert not state.hardship_holder


def test_duplicate_assistance_is_not_warned_again_by_a_later_status_record():
    # tekun first, then dibao (the overlap), then records that touch neither episode's start.
    _, outputs, _ = run(
        [
            enrollment("e-tk", P, "tekun", "active", "2016-01-01"),
            enrollment("e-db", P, "dibao", "active", "2017-01-01"),
            disability("c1", P, "certified", "2017-02-01", level=3),
            enrollment("e-liv", P, "medical_aid", "active", "2017-03-01"),
            enrollment("e-tk2", P, "tekun", "active", "2016-01-01", amount="900"),
        ]
    )
    dup = [o for o in outputs if getattr(o, "rule", None) == "DUPLICATE_ASSISTANCE"]
    assert [(w.programs, w.caused_by, w.evidence) for w in dup] == [
        (("dibao", "tekun"), "e-db", ("e-db", "e-tk"))
    ]


def test_duplicate_assistance_warns_again_for_a_new_episode_of_the_pair():
    _, outputs, _ = run(
        [
            enrollment("e-tk", P, "tekun", "active", "2016-01-01"),
            enrollment("e-db", P, "dibao", "active", "2017-01-01"),
            enrollment("e-db-end", P, "dibao", "ended", "2017-06-01"),
            enrollment("e-db2", P, "dibao", "active", "2017-09-01"),
            disability("c1", P, "certified", "2017-10-01", level=3),
        ]
    )
    dup = [o for o in outputs if getattr(o, "rule", None) == "DUPLICATE_ASSISTANCE"]
    assert [w.caused_by for w in dup] == ["e-db", "e-db2"]
    assert len({w.warning_id for w in dup}) == 2
