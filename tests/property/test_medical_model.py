"""R1 against a brute-force model written from the contract's wording.

The model keeps every record ever seen and recomputes the rolling sum from scratch;
the rule keeps only the window. Both must give the same warnings and the same sum.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.records import MedicalSettlement
from stream_app.rules import medical
from stream_app.rules.window import counted_fen, digests
from stream_app.settings import RuleParams
from stream_app.state import TableState
from tests.builders import person

P = person(3)
TIERS = (3_000_000, 5_000_000)
PARAMS = RuleParams(medical_tiers_fen=TIERS)
T0 = datetime(2016, 1, 1, tzinfo=UTC)
YEAR = timedelta(days=365)


def make(i: int, day: int, minute: int, fen: int, kind: str, target: int | None) -> MedicalSettlement:
    at = T0 + timedelta(days=day, minutes=minute)
    if kind == "reversal":
        return MedicalSettlement(
            event_id=f"r{i}",
            person_id=P,
            region_code="330183004",
            settled_at=at,
            kind="reversal",
            reverses=f"s{target}",
        )
    return MedicalSettlement(
        event_id=f"s{i}",
        person_id=P,
        region_code="330183004",
        settled_at=at,
        total_cost=Decimal(fen) / 100,
        self_pay=Decimal(fen) / 100,
    )


@st.composite
def feeds(draw):
    """Settlements over ~3 years, late arrivals, reversals (known or not), redeliveries."""
    records: list[MedicalSettlement] = []
    n = draw(st.integers(1, 40))
    for i in range(n):
        choice = draw(st.sampled_from(["settle", "settle", "settle", "reverse", "repeat", "edge"]))
        if choice == "repeat" and records:
            records.append(draw(st.sampled_from(records)))
            continue
        day, minute = draw(st.integers(0, 1100)), draw(st.integers(0, 1439))
        if choice == "edge" and records:
            # Exactly 365 days after an earlier record: the window's boundary.
            earlier = draw(st.sampled_from(records)).settled_at - T0
            day, minute = earlier.days + 365, earlier.seconds // 60
        if choice == "reverse":
            records.append(make(i, day, minute, 0, "reversal", draw(st.integers(0, n))))
        else:
            fen = draw(st.sampled_from([1, 99, 50_000, 500_000, 1_000_000, 2_999_999, 3_000_000]))
            records.append(make(i, day, minute, fen, "settlement", None))
    return records


def paid_fen(settlement: MedicalSettlement) -> int:
    assert settlement.self_pay is not None  # the model holds settlements only
    return int(settlement.self_pay * 100)


def model(records: list[MedicalSettlement]) -> tuple[list[tuple[str, int, int]], int]:
    """Warnings (caused_by, tier, rolling) and the final rolling sum, from the contract's text."""
    held: dict[str, MedicalSettlement] = {}  # first delivery of each settlement inside the window
    reversed_ids: set[str] = set()
    newest: datetime | None = None
    armed = set(TIERS)
    warnings = []
    for rec in records:
        if rec.kind == "settlement" and rec.event_id not in held:
            newest = rec.settled_at if newest is None else max(newest, rec.settled_at)
            if rec.settled_at > newest - YEAR:
                held[rec.event_id] = rec
        elif (
            rec.kind == "reversal"
            and newest is not None
            and rec.reverses in held
            and held[rec.reverses].settled_at > newest - YEAR
        ):
            reversed_ids.add(rec.reverses)
        if newest is None:
            continue
        rolling = sum(
            paid_fen(s) for eid, s in held.items() if eid not in reversed_ids and s.settled_at > newest - YEAR
        )
        armed |= {t for t in TIERS if t > rolling}
        fired = {t for t in armed if t <= rolling}
        if fired:
            warnings.append((rec.event_id, max(fired), rolling))
            armed -= fired
    final = (
        sum(paid_fen(s) for e, s in held.items() if e not in reversed_ids and s.settled_at > newest - YEAR)
        if newest
        else 0
    )
    return warnings, final


def run_rule(records):
    state, warnings = None, []
    for rec in records:
        result = medical.step(state, rec, hardship_holder=False, params=PARAMS)
        state = result.state
        for w in result.outputs:
            warnings.append((w.caused_by, int(Decimal(w.tier) * 100), int(Decimal(w.rolling_self_pay) * 100)))
    return state, warnings


@settings(max_examples=300, deadline=None)
@given(feeds())
def test_medical_rule_matches_brute_force_model(records):
    state, warnings = run_rule(records)
    expected_warnings, expected_sum = model(records)
    assert warnings == expected_warnings
    assert (state.rolling_fen if state else 0) == expected_sum


@settings(max_examples=200, deadline=None)
@given(feeds())
def test_medical_state_holds_only_the_window(records):
    state, _ = run_rule(records)
    if state is not None:
        assert all(e.settled_us > state.newest_us - medical.WINDOW_US for e in state.entries)
        assert len({e.event_id for e in state.entries}) == len(state.entries)
        # The kept sum is the sum over the window, whatever came and went.
        assert state.sum_fen == counted_fen(state.entries)
        assert state.id_digests == digests(state.entries)


@settings(max_examples=100, deadline=None)
@given(feeds())
def test_medical_replay_gives_equal_state_and_ids(records):
    first_state, _ = run_rule(records)
    outputs_a = [o for r in _outputs(records) for o in r]
    outputs_b = [o for r in _outputs(records) for o in r]
    assert outputs_a == outputs_b
    second_state, _ = run_rule(records)
    assert first_state == second_state


@settings(max_examples=100, deadline=None)
@given(feeds())
def test_medical_state_round_trips_through_table_encoding(records):
    state, _ = run_rule(records)
    if state is not None:
        table: dict[str, bytes] = {}
        layer = TableState(table, medical.MedicalState)
        layer.put(P, state)
        assert layer.get(P) == state
        assert msgspec.msgpack.decode(table[P]) is not None


def _outputs(records):
    state = None
    for rec in records:
        result = medical.step(state, rec, hardship_holder=False, params=PARAMS)
        state = result.state
        yield [msgspec.to_builtins(o) for o in result.outputs]
