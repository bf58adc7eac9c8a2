"""The shared rolling window: state written by older workers still reads and gives the same results;
the kept sum and the duplicate index follow the entries."""

from __future__ import annotations

from datetime import date

import msgspec
from msgspec import Struct

from stream_app.rules import medical, window
from stream_app.settings import RuleParams
from stream_app.state import TableState
from tests.builders import person, reversal, settlement

P = person(21)
PARAMS = RuleParams()


class OldEntry(Struct, frozen=True, array_like=True):
    """An entry as workers before the kept sum wrote it (unchanged since)."""

    settled_us: int
    event_id: str
    self_pay_fen: int
    service_on: date
    household_id: str | None = None
    reversed: bool = False


class OldMedicalState(Struct, frozen=True, array_like=True):
    """A person's state as workers before the kept sum wrote it: four elements, no sum."""

    newest_us: int
    newest_offset_s: int
    entries: tuple[OldEntry, ...] = ()
    disarmed_fen: tuple[int, ...] = ()


HISTORY = [
    settlement("s1", P, "2017-01-20T09:30:00+08:00", "12000", household_id="HH-1"),
    settlement("s2", P, "2017-02-14T10:00:00+08:00", "19000"),  # 31,000: fires 30,000
    settlement("s3", P, "2017-03-01T10:00:00+08:00", "500"),
    reversal("r3", P, "2017-03-02T10:00:00+08:00", "s3"),
]
LATER = [
    settlement("s4", P, "2017-04-01T10:00:00+08:00", "20000"),  # 51,000: fires 50,000
    reversal("r2", P, "2017-04-02T10:00:00+08:00", "s2"),  # 32,000: re-arms 50,000
    settlement("s2", P, "2017-02-14T10:00:00+08:00", "19000"),  # redelivered: still reversed
    settlement("s5", P, "2018-01-25T10:00:00+08:00", "30000"),  # s1 leaves the window: 50,000
]


def run(state, records):
    outputs = []
    for rec in records:
        result = medical.step(state, rec, hardship_holder=False, params=PARAMS)
        state = result.state
        outputs.extend(msgspec.to_builtins(o) for o in result.outputs)
    return state, outputs


def old_bytes(state: medical.MedicalState) -> bytes:
    old = OldMedicalState(
        state.newest_us,
        state.newest_offset_s,
        tuple(OldEntry(*msgspec.structs.astuple(e)) for e in state.entries),
        state.disarmed_fen,
    )
    return msgspec.msgpack.encode(old)


def test_window_state_written_before_the_kept_sum_decodes_and_gives_the_same_results():
    state, _ = run(None, HISTORY)
    raw = old_bytes(state)
    assert len(msgspec.msgpack.decode(raw)) == 4  # the old shape: no sum
    table = {P: raw}
    decoded = TableState(table, medical.MedicalState).get(P)
    assert decoded.sum_fen is None and decoded.rolling_fen == state.rolling_fen == 3_100_000
    assert decoded.id_digests is None
    assert (decoded.entries, decoded.disarmed_fen) == (state.entries, state.disarmed_fen)
    from_old, outputs_from_old = run(decoded, LATER)
    from_new, outputs_from_new = run(state, LATER)
    assert outputs_from_old == outputs_from_new and len(outputs_from_new) == 2
    assert from_old == from_new and from_new.sum_fen == window.counted_fen(from_new.entries)
    assert from_new.id_digests == window.digests(from_new.entries)


def test_window_state_with_the_kept_sum_still_reads_as_the_old_shape():
    # A worker rolled back to the previous release reads the new bytes (the sum is ignored).
    state, _ = run(None, HISTORY)
    assert len(msgspec.msgpack.decode(msgspec.msgpack.encode(state))) == 6
    old = msgspec.msgpack.decode(msgspec.msgpack.encode(state), type=OldMedicalState)
    assert old_bytes(state) == msgspec.msgpack.encode(old)


def test_window_kept_sum_follows_prunes_reversals_and_late_settlements():
    state, _ = run(None, HISTORY + LATER)
    assert state.sum_fen == window.counted_fen(state.entries) == 5_000_000
    assert [e.event_id for e in state.entries] == ["s2", "s3", "s4", "s5"]
    late, _ = run(state, [settlement("s0", P, "2017-02-01T10:00:00+08:00", "1.23")])
    assert [e.event_id for e in late.entries] == ["s0", "s2", "s3", "s4", "s5"]
    assert late.sum_fen == window.counted_fen(late.entries) == 5_000_123


def test_window_find_returns_the_entry_reversed_or_not():
    state, _ = run(None, HISTORY)
    assert window.find(state, "s3").reversed and window.find(state, "s1").household_id == "HH-1"
    assert window.find(state, "nope") is None and window.find(None, "s1") is None


def test_window_duplicate_index_tells_ids_with_the_same_digest_apart():
    # Two event_ids with the same CRC-32: the second is a new settlement, not a redelivery.
    assert window.digest("YB-29685295") == window.digest("YB-32060020")
    first = settlement("YB-29685295", P, "2017-01-20T09:30:00+08:00", "100")
    other = settlement("YB-32060020", P, "2017-01-21T09:30:00+08:00", "200")
    state, _ = run(None, [first, other])
    assert [e.event_id for e in state.entries] == ["YB-29685295", "YB-32060020"]
    assert state.rolling_fen == 30_000
    again = medical.step(state, other, hardship_holder=False, params=PARAMS)
    assert again.outcome == "duplicate" and again.state is state
