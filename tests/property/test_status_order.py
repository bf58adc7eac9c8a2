"""Status rules are order-robust across topics and replay to the same ids.

Records of one topic for one person keep their order (one partition); across
topics any interleaving may happen. For records that do not contradict each other,
the stops (ids included) and, after resumes, the net outcome per program must not
depend on the interleaving.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.records import PaymentResume, PaymentStop
from stream_app.rules import status
from stream_app.settings import RuleParams
from tests.builders import death, disability, enrollment, person, withdrawal

P = person(11)
PARAMS = RuleParams()
PROGRAMS = ("dibao", "tekun", "disability_living", "disability_nursing", "medical_aid")


def run(records):
    state, outputs = None, []
    for rec in records:
        result = status.step(state, rec, params=PARAMS)
        state = result.state
        outputs.extend(result.outputs)
    return state, outputs


@st.composite
def feeds(draw):
    """Per-topic sequences for one person: enrollments, at most one disability record, a death."""
    programs = draw(st.lists(st.sampled_from(PROGRAMS), min_size=1, max_size=4, unique=True))
    enrollments = [
        enrollment(f"e-{p}", P, p, "active", f"2017-{draw(st.integers(1, 12)):02d}-01") for p in programs
    ]
    deaths = [death("d1", P, f"2017-{draw(st.integers(1, 12)):02d}-15")]
    if draw(st.booleans()):
        deaths.append(withdrawal("w1", P, "d1"))
    disabilities = []
    kind = draw(st.sampled_from(["none", "revoked", "expired", "level3", "level1"]))
    if kind in ("revoked", "expired"):
        disabilities.append(disability("c1", P, kind, "2017-06-10"))
    elif kind.startswith("level"):
        disabilities.append(disability("c1", P, "certified", "2017-06-10", level=int(kind[-1])))
    return [enrollments, deaths, disabilities]


def interleave(draw, topics):
    """Merge per-topic sequences keeping each topic's own order."""
    queues = [list(q) for q in topics if q]
    merged = []
    while queues:
        i = draw(st.integers(0, len(queues) - 1))
        merged.append(queues[i].pop(0))
        if not queues[i]:
            queues.pop(i)
    return merged


def net_outcome(outputs):
    """Per program: stopped (a stop not undone) or paid."""
    stopped: dict[str, set[str]] = {}
    for o in outputs:
        if isinstance(o, PaymentStop):
            stopped.setdefault(o.program, set()).add(o.stop_id)
        elif isinstance(o, PaymentResume):
            stopped.get(o.program, set()).discard(o.stop_id)
    return {p: bool(ids) for p, ids in stopped.items() if ids}


def death_stops(outputs):
    return sorted(
        (o.stop_id, o.program, o.reason, o.effective_on, o.caused_by)
        for o in outputs
        if isinstance(o, PaymentStop) and o.reason in ("DEATH", "DECEASED_ENROLLMENT")
    )


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_death_stops_do_not_depend_on_interleaving(data):
    topics = data.draw(feeds())
    topics[1] = topics[1][:1]  # death only: every interleaving must give the same death stops
    reference = death_stops(run([r for q in topics for r in q])[1])
    assert reference  # a death always stops every active program
    assert death_stops(run(interleave(data.draw, topics))[1]) == reference


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_all_stops_ids_included_do_not_depend_on_interleaving(data):
    topics = data.draw(feeds())
    topics[1] = topics[1][:1]
    stops_of = lambda outs: sorted(o.stop_id for o in outs if isinstance(o, PaymentStop))  # noqa: E731
    assert stops_of(run(interleave(data.draw, topics))[1]) == stops_of(run([r for q in topics for r in q])[1])


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_net_outcome_after_stops_and_resumes_does_not_depend_on_interleaving(data):
    topics = data.draw(feeds())
    reference = net_outcome(run([r for q in topics for r in q])[1])
    assert net_outcome(run(interleave(data.draw, topics))[1]) == reference


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_replaying_the_same_records_gives_the_same_outputs_and_state(data):
    records = interleave(data.draw, data.draw(feeds()))
    assert run(records) == run(records)
