"""R6 DUPLICATE_ASSISTANCE: one warning per pair of overlapping episodes, whatever follows.

After an overlap, any later status records of the person (amount updates, other
enrollments, disability records, deaths and withdrawals, redeliveries) must never
warn a second time for the same pair, and one warning id never carries two contents.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.records import DuplicateAssistanceWarning, StatusRecord, SubsidyEnrollment, encode
from stream_app.rules import status
from stream_app.settings import RuleParams
from tests.builders import death, disability, enrollment, person, withdrawal

P = person(13)
PARAMS = RuleParams()
PROGRAMS = ("dibao", "tekun", "disability_living", "disability_nursing")
EXCLUSIVE = {frozenset(pair) for pair in PARAMS.exclusive_programs}


@st.composite
def later_record(draw, n: int) -> StatusRecord:
    kind = draw(st.sampled_from(["enrollment", "enrollment", "disability", "death", "withdrawal"]))
    month = draw(st.integers(1, 12))
    if kind == "enrollment":
        return enrollment(
            f"e{n}",
            P,
            draw(st.sampled_from(PROGRAMS)),
            draw(st.sampled_from(["active", "active", "ended"])),
            f"2018-{month:02d}-01",
            amount=str(draw(st.integers(0, 2000))),
        )
    if kind == "disability":
        status_ = draw(st.sampled_from(["certified", "revoked", "expired"]))
        level = draw(st.integers(1, 4)) if status_ == "certified" else None
        return disability(f"c{n}", P, status_, f"2018-{month:02d}-10", level)
    if kind == "death":
        return death(f"d{n}", P, f"2018-{month:02d}-15")
    return withdrawal(f"w{n}", P, f"d{draw(st.integers(0, n))}")


@st.composite
def feeds(draw) -> list[StatusRecord]:
    first, second = draw(st.sampled_from(sorted(tuple(sorted(p)) for p in EXCLUSIVE)))
    if draw(st.booleans()):
        first, second = second, first
    records: list[StatusRecord] = [
        enrollment("start-1", P, first, "active", "2016-01-01"),
        enrollment("start-2", P, second, "active", "2017-01-01"),
    ]
    for n in range(draw(st.integers(1, 25))):
        if records and draw(st.integers(0, 9)) == 0:
            records.append(draw(st.sampled_from(records)))  # a redelivery
        else:
            records.append(draw(later_record(n)))
    return records


def overlapping_pairs(records: list[StatusRecord]) -> set[frozenset[str]]:
    """Model: the (episode, episode) pairs of exclusive programs ever active at once."""
    active: dict[str, str] = {}  # program -> event_id of the record that began its episode
    seen: set[str] = set()
    pairs: set[frozenset[str]] = set()
    for rec in records:
        if rec.event_id in seen:
            continue
        seen.add(rec.event_id)
        if not isinstance(rec, SubsidyEnrollment):
            continue
        if rec.status == "ended":
            active.pop(rec.program, None)
            continue
        active.setdefault(rec.program, rec.event_id)
        for program, event_id in active.items():
            if frozenset((program, rec.program)) in EXCLUSIVE:
                pairs.add(frozenset((event_id, active[rec.program])))
    return pairs


def run(records: list[StatusRecord]) -> list[DuplicateAssistanceWarning]:
    state = None
    warnings: list[DuplicateAssistanceWarning] = []
    for rec in records:
        result = status.step(state, rec, params=PARAMS)
        state = result.state
        warnings.extend(o for o in result.outputs if isinstance(o, DuplicateAssistanceWarning))
    return warnings


@settings(max_examples=400, deadline=None)
@given(feeds())
def test_duplicate_assistance_one_warning_per_overlapping_pair_whatever_follows(records):
    warnings = run(records)
    by_pair: dict[frozenset[str], int] = {}
    for w in warnings:
        by_pair[frozenset(w.evidence)] = by_pair.get(frozenset(w.evidence), 0) + 1
    assert frozenset(("start-1", "start-2")) in by_pair
    assert all(count == 1 for count in by_pair.values()), by_pair
    assert set(by_pair) == overlapping_pairs(records)


@settings(max_examples=400, deadline=None)
@given(feeds())
def test_duplicate_assistance_one_id_never_carries_two_contents(records):
    contents: dict[str, set[bytes]] = {}
    for w in run(records):
        contents.setdefault(w.warning_id, set()).add(encode(w))
    assert all(len(c) == 1 for c in contents.values()), contents
    first = next(w for w in run(records) if set(w.evidence) == {"start-1", "start-2"})
    assert first.caused_by == "start-2"  # the enrollment that made the overlap
