"""R4 and R9 do not depend on how the four input feeds interleave (the worker's whole path).

The pure per-record processor (decode, state, rules) over in-memory state is fed the
records of the four topics in any interleaving that keeps each topic's own order (one
partition per person and topic). For records that do not contradict each other:
- the POST_DEATH_ACTIVITY warnings, ids and contents, are the same set, each once, and
  are exactly the settlements (not reversed) with care after died_on plus the grace;
- every death stop carries the same overpayment figures, equal to a month-by-month count;
- after stops and resumes, each person and program ends up stopped or paid the same way.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_app.processing import DictState, Processor
from stream_app.records import PaymentResume, PaymentStop, PostDeathWarning, encode
from stream_app.settings import load
from tests.builders import death_value, disability_value, enrollment_value, person, settlement_value
from tests.property.test_status_order import interleave

SETTINGS = load({})
GRACE = SETTINGS.rules.post_death_grace_days
PROGRAMS = ("dibao", "tekun", "disability_living", "disability_nursing")
OFFSETS = (timezone(timedelta(hours=8)), UTC, timezone(timedelta(hours=-5)))
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Record = tuple[str, dict[str, Any]]


@st.composite
def person_feeds(draw, n: int, withdrawal: bool) -> list[list[Record]]:
    """[enrollments, deaths, disability, settlements] of one person."""
    who = person(500 + n)
    died_on = date(2017, 1, 1) + timedelta(days=draw(st.integers(0, 364)))
    registered = datetime.combine(died_on, datetime.min.time()) + timedelta(
        days=draw(st.integers(0, 540)), hours=draw(st.integers(0, 23))
    )
    registered_at = registered.replace(tzinfo=draw(st.sampled_from(OFFSETS)))
    deaths = [
        (
            "DEATH_REGISTRATIONS",
            death_value(f"d-{n}", who, died_on.isoformat(), registered_at=registered_at.isoformat()),
        )
    ]
    if withdrawal and draw(st.booleans()):
        value = {**death_value(f"w-{n}", who, "2019-01-01"), "status": "withdrawn", "withdraws": f"d-{n}"}
        deaths.append(("DEATH_REGISTRATIONS", value))

    enrollments = []
    for program in draw(st.lists(st.sampled_from(PROGRAMS), max_size=3, unique=True)):
        start = date(2015, 1, 1) + timedelta(days=draw(st.integers(0, 4 * 365)))
        amount = f"{draw(st.integers(0, 3000))}.{draw(st.integers(0, 99)):02d}"
        enrollments.append(
            (
                "SUBSIDY_ENROLLMENTS",
                enrollment_value(f"e-{n}-{program}", who, program, "active", start.isoformat(), amount),
            )
        )

    disability = []
    kind = draw(st.sampled_from(["none", "revoked", "level3", "level1"]))
    if kind == "revoked":
        disability.append(
            ("DISABILITY_REGISTRATIONS", disability_value(f"c-{n}", who, "revoked", "2017-06-10"))
        )
    elif kind != "none":
        level = int(kind[-1])
        disability.append(
            ("DISABILITY_REGISTRATIONS", disability_value(f"c-{n}", who, "certified", "2017-06-10", level))
        )

    # Settlements within one 365-day window, care from before the death to weeks after it.
    settlements: list[Record] = []
    for i in range(draw(st.integers(0, 6))):
        service_on = died_on + timedelta(days=draw(st.integers(-10, 60)))
        settled = datetime.combine(service_on, datetime.min.time()) + timedelta(
            days=draw(st.integers(0, 30)), hours=draw(st.integers(0, 23))
        )
        extra = {} if draw(st.booleans()) else {"service_on": service_on.isoformat()}
        if draw(st.booleans()):
            extra["household_id"] = f"HH-{n}"
        value = settlement_value(
            f"b-{n}-{i}",
            who,
            settled.replace(tzinfo=draw(st.sampled_from(OFFSETS))).isoformat(),
            f"{draw(st.integers(0, 5000))}.{draw(st.integers(0, 99)):02d}",
            **extra,
        )
        settlements.append(("MEDICAL_SETTLEMENTS", value))
        if draw(st.integers(0, 4)) == 0:
            settlements.append(("MEDICAL_SETTLEMENTS", value))  # redelivered
        if "service_on" in extra and service_on <= died_on and draw(st.booleans()):
            # Reversals only of care before the death: they never meet R4, so they cannot
            # contradict a warning that another interleaving already sent.
            reversal = {
                "event_id": f"r-{n}-{i}",
                "person_id": who,
                "region_code": value["region_code"],
                "settled_at": (settled + timedelta(days=1)).replace(tzinfo=OFFSETS[0]).isoformat(),
                "kind": "reversal",
                "reverses": value["event_id"],
            }
            settlements.append(("MEDICAL_SETTLEMENTS", reversal))
    return [enrollments, deaths, disability, settlements]


@st.composite
def feeds(draw, withdrawal: bool = False) -> list[list[Record]]:
    """The four topics' records, for one or two persons (each topic keeps its order)."""
    persons = [draw(person_feeds(n, withdrawal)) for n in range(draw(st.integers(1, 2)))]
    return [[r for p in persons for r in p[topic]] for topic in range(4)]


def run(records: list[Record]) -> list[Any]:
    processor = Processor(SETTINGS, DictState(), DictState())
    outputs: list[Any] = []
    for offset, (logical, value) in enumerate(records):
        raw = json.dumps(value).encode()
        processed = processor.process(SETTINGS.topic(logical), 0, offset, value["person_id"].encode(), raw)
        assert not processed.outcome.startswith("dead_letter"), processed
        outputs.extend(e.value for e in processor.with_households(processed))
    return outputs


# ---------------------------------------------------------------------------
# Named invariants


def post_death_warnings(outputs: list[Any]) -> list[bytes]:
    return sorted(encode(o) for o in outputs if isinstance(o, PostDeathWarning))


def overpayments(outputs: list[Any]) -> dict[str, tuple[int | None, str | None]]:
    return {
        o.stop_id: (o.overpaid_months, o.overpaid_amount)
        for o in outputs
        if isinstance(o, PaymentStop) and o.reason in ("DEATH", "DECEASED_ENROLLMENT")
    }


def net_outcome(outputs: list[Any]) -> dict[tuple[str, str], bool]:
    """Per person and program: stopped (a stop not undone by a resume)."""
    stopped: dict[tuple[str, str], set[str]] = {}
    for o in outputs:
        if isinstance(o, PaymentStop):
            stopped.setdefault((o.person_id, o.program), set()).add(o.stop_id)
        elif isinstance(o, PaymentResume):
            stopped.get((o.person_id, o.program), set()).discard(o.stop_id)
    return {k: bool(ids) for k, ids in stopped.items() if ids}


def expected_post_death(topics: list[list[Record]]) -> set[tuple[str, str, str, str, str]]:
    """Model: (settlement, death, died_on, service_on, self_pay) of every bill after death + grace."""
    deaths = {v["person_id"]: v for _, v in topics[1] if v.get("status", "registered") == "registered"}
    reversed_ids = {v["reverses"] for _, v in topics[3] if v.get("kind") == "reversal"}
    found = set()
    for _, v in topics[3]:
        death = deaths.get(v["person_id"])
        if death is None or v.get("kind") == "reversal" or v["event_id"] in reversed_ids:
            continue
        service_on = v.get("service_on") or v["settled_at"][:10]
        if date.fromisoformat(service_on) > date.fromisoformat(death["died_on"]) + timedelta(days=GRACE):
            found.add((v["event_id"], death["event_id"], death["died_on"], service_on, v["self_pay"]))
    return found


def months_paid(low: date, high: date) -> int:
    """Brute force: first days of a month d with low <= d <= high."""
    d, count = date(low.year, low.month, 1), 0
    while d <= high:
        count += d >= low
        d = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    return count


def expected_overpayments(topics: list[list[Record]], outputs: list[Any]) -> dict[str, tuple[int, str]]:
    """Model of R9 for each death stop emitted, from the records alone."""
    deaths = {v["person_id"]: v for _, v in topics[1]}
    episodes = {(v["person_id"], v["program"]): v for _, v in topics[0]}
    found = {}
    for o in outputs:
        if not (isinstance(o, PaymentStop) and o.reason in ("DEATH", "DECEASED_ENROLLMENT")):
            continue
        death, ep = deaths[o.person_id], episodes[(o.person_id, o.program)]
        registered_on = datetime.fromisoformat(death["registered_at"]).astimezone(OFFSETS[0]).date()
        ep_on = date.fromisoformat(ep["effective_on"])
        months = months_paid(max(o.effective_on, ep_on), max(registered_on, ep_on))
        fen = months * int(Decimal(ep["monthly_amount"]) * 100)
        found[o.stop_id] = (months, f"{fen // 100}.{fen % 100:02d}")
    return found


# ---------------------------------------------------------------------------


@PROPERTY
@given(st.data())
def test_post_death_warnings_are_the_same_for_any_interleaving_and_match_the_model(data):
    topics = data.draw(feeds())
    reference = run([r for q in topics for r in q])
    outputs = run(interleave(data.draw, topics))
    warnings = post_death_warnings(outputs)
    assert warnings == post_death_warnings(reference)
    assert len(warnings) == len(set(warnings))  # each once
    seen = {
        (w.caused_by, w.evidence[1], w.died_on.isoformat(), w.service_on.isoformat(), w.self_pay)
        for w in outputs
        if isinstance(w, PostDeathWarning)
    }
    expected = {
        (b, d, died, service, f"{Decimal(pay):.2f}")
        for b, d, died, service, pay in expected_post_death(topics)
    }
    assert seen == expected


@PROPERTY
@given(st.data())
def test_overpayment_figures_are_the_same_for_any_interleaving_and_match_a_month_count(data):
    topics = data.draw(feeds())
    reference = run([r for q in topics for r in q])
    outputs = run(interleave(data.draw, topics))
    assert overpayments(outputs) == overpayments(reference)
    assert overpayments(outputs) == expected_overpayments(topics, outputs)


@PROPERTY
@given(st.data())
def test_net_outcome_per_person_and_program_is_the_same_for_any_interleaving(data):
    topics = data.draw(feeds(withdrawal=True))
    reference = net_outcome(run([r for q in topics for r in q]))
    assert net_outcome(run(interleave(data.draw, topics))) == reference


@PROPERTY
@given(st.data())
def test_one_warning_or_stop_id_never_carries_two_contents(data):
    topics = data.draw(feeds(withdrawal=True))
    outputs = run(interleave(data.draw, topics)) + run([r for q in topics for r in q])
    contents: dict[str, set[bytes]] = {}
    for o in outputs:
        ident = o.resume_id if isinstance(o, PaymentResume) else getattr(o, "warning_id", None) or o.stop_id
        contents.setdefault(ident, set()).add(encode(o))
    assert all(len(c) == 1 for c in contents.values())
