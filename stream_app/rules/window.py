"""The rolling 365-day self-pay window: one pure function for a person (R1) and a household (R7).

A window holds the settlements with ``settled_at`` in the 365 days ending at the newest
``settled_at`` seen, sorted by (settled_us, event_id); reversed ones stay, flagged, so
that a redelivered original is still recognised and counted once. Everything older is
pruned, so state is proportional to recent bills.

Two things are kept in the state so that a record does not pass over the whole window: the
rolling sum (``sum_fen``), updated as entries come, go and are reversed, and a duplicate
index (``id_digests``, 4 bytes per entry). State written before they were kept is a shorter
msgpack array: it decodes with None for them, and the first record recomputes them from the
entries, so running workers' tables stay readable (and older workers ignore the extra
trailing elements).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from datetime import date, timedelta
from operator import attrgetter
from typing import TypeVar
from zlib import crc32

from msgspec import Struct
from msgspec.structs import replace

from stream_app.rules.common import from_us

WINDOW = timedelta(days=365)
WINDOW_US = WINDOW // timedelta(microseconds=1)

# Field getters: passes over a window run in C (map, bisect), not in Python loops.
_SETTLED_US = attrgetter("settled_us")
_SELF_PAY_FEN = attrgetter("self_pay_fen")
_REVERSED = attrgetter("reversed")


class Entry(Struct, frozen=True, array_like=True, order=True):
    """One settlement inside the window. Sorted by (settled_us, event_id)."""

    settled_us: int
    event_id: str
    self_pay_fen: int
    service_on: date
    household_id: str | None = None
    reversed: bool = False


class Window(Struct, frozen=True, array_like=True):
    """A window with its tiers; a person's and a household's state are both one."""

    newest_us: int  # newest settled_at seen: the window ends here
    newest_offset_s: int  # its UTC offset, so window dates read as the source wrote them
    entries: tuple[Entry, ...] = ()
    disarmed_fen: tuple[int, ...] = ()  # tiers reached and not yet fallen below
    #: The rolling sum of the entries not reversed; None in state written before it was kept.
    sum_fen: int | None = None
    #: A duplicate index: 4 bytes per entry, in entry order, the CRC-32 of its event_id; None
    #: in state written before it was kept. Found in one ``bytes.find`` instead of comparing
    #: every entry's event_id (cold in memory for a person last seen many records ago).
    id_digests: bytes | None = None

    @property
    def rolling_fen(self) -> int:
        total = self.sum_fen
        return counted_fen(self.entries) if total is None else total

    @property
    def window_start(self) -> date:
        return from_us(self.newest_us - WINDOW_US, self.newest_offset_s).date()

    @property
    def window_end(self) -> date:
        return from_us(self.newest_us, self.newest_offset_s).date()


W = TypeVar("W", bound=Window)


def counted_fen(entries: Iterable[Entry]) -> int:
    """The sum of ``self_pay_fen`` over the entries not reversed."""
    entries = tuple(entries)
    total = sum(map(_SELF_PAY_FEN, entries))
    if True in map(_REVERSED, entries):  # rare: a reversed settlement still in the window
        total -= sum(e.self_pay_fen for e in entries if e.reversed)
    return total


def digest(event_id: str) -> bytes:
    """An event_id's 4 bytes in ``Window.id_digests`` (CRC-32: the same in every process)."""
    return crc32(event_id.encode("utf-8", "surrogatepass")).to_bytes(4, "little")


def digests(entries: Iterable[Entry]) -> bytes:
    """``Window.id_digests`` of these entries."""
    return b"".join(digest(e.event_id) for e in entries)


def _position(entries: tuple[Entry, ...], index: bytes, event_id: str, mark: bytes) -> int:
    """The place of the entry with this event_id (-1: none): its digest ``mark`` at an entry's
    place in ``index``, then the id itself."""
    at = index.find(mark)
    while at != -1:
        if not at & 3 and entries[at >> 2].event_id == event_id:
            return at >> 2
        at = index.find(mark, at + 1)  # another id with the same digest, or a match across two
    return -1


def settle(state: W | None, entry: Entry, offset_s: int, state_type: type[W]) -> tuple[W | None, str]:
    """Place a settlement in the window; say what it did (``counted``, ``duplicate``, ``outside_window``).

    ``offset_s`` is the UTC offset of its ``settled_at``; ``state_type`` builds the first state.
    The state is returned unchanged (the same object) when the settlement changes nothing.
    """
    at_us = entry.settled_us
    mark = digest(entry.event_id)
    if state is None:
        return state_type(at_us, offset_s, (entry,), (), entry.self_pay_fen, mark), "counted"
    entries = state.entries
    index = state.id_digests
    if index is None:  # state written before the index was kept
        index = digests(entries)
    # A redelivery: the window holds every settlement that can still count, reversed or not.
    if _position(entries, index, entry.event_id, mark) != -1:
        return state, "duplicate"
    if at_us >= state.newest_us:
        newest_us, newest_offset_s = at_us, offset_s
    else:
        newest_us, newest_offset_s = state.newest_us, state.newest_offset_s
    floor_us = newest_us - WINDOW_US
    if at_us <= floor_us:
        return state, "outside_window"
    total = state.sum_fen
    if total is None:  # state written before the sum was kept
        total = counted_fen(entries)
    total += entry.self_pay_fen
    # Prune the entries at or before the floor (the new one is after it) with one bisection,
    # and subtract only what leaves, not the whole window again.
    start = 0
    if entries and entries[0].settled_us <= floor_us:
        start = bisect_right(entries, floor_us, key=_SETTLED_US)
        total -= counted_fen(entries[:start])
    if not entries or entries[-1].settled_us < at_us:  # the usual case: the newest so far
        # One tuple concatenation (no slice when nothing was pruned): ``(*kept, entry)`` would
        # copy the window through a list first.
        window = (entries[start:] if start else entries) + (entry,)
        index = (index[start * 4 :] if start else index) + mark
    else:  # a late settlement: where insort would put it
        at = bisect_right(entries, entry, lo=start)
        window = (*entries[start:at], entry, *entries[at:])
        index = index[start * 4 : at * 4] + mark + index[at * 4 :]
    return state_type(newest_us, newest_offset_s, window, state.disarmed_fen, total, index), "counted"


def reverse(state: W | None, reverses: str) -> tuple[W | None, str]:
    """Flag the settlement ``reverses`` as reversed (it no longer counts); the window does not move.

    Outcomes ``reversed``, ``duplicate`` (already reversed), ``unknown_reversal`` (not held).
    """
    if state is None:
        return state, "unknown_reversal"
    entries = state.entries
    index = state.id_digests
    if index is None:  # state written before the index was kept
        index = digests(entries)
    i = _position(entries, index, reverses, digest(reverses))
    if i == -1:
        return state, "unknown_reversal"
    entry = entries[i]
    if entry.reversed:
        return state, "duplicate"
    reversed_entries = (*entries[:i], replace(entry, reversed=True), *entries[i + 1 :])
    total = state.rolling_fen - entry.self_pay_fen
    return replace(state, entries=reversed_entries, sum_fen=total, id_digests=index), "reversed"


def fire(
    rolling_fen: int, disarmed_fen: tuple[int, ...], tiers_fen: tuple[int, ...]
) -> tuple[tuple[int, ...], int | None]:
    """Tiers above the sum re-arm first; then armed tiers at or below it fire.

    Returns the tiers now disarmed (sorted) and the highest tier fired (None: no warning).
    """
    if not disarmed_fen and (not tiers_fen or rolling_fen < min(tiers_fen)):
        return (), None  # the usual case: below every tier, none disarmed
    still_disarmed = {t for t in disarmed_fen if t <= rolling_fen and t in tiers_fen}
    fired = [t for t in tiers_fen if t <= rolling_fen and t not in still_disarmed]
    return tuple(sorted(still_disarmed.union(fired))), max(fired) if fired else None


def find(state: Window | None, event_id: str) -> Entry | None:
    """The window's entry of a settlement, reversed or not; None when the window does not hold it."""
    for entry in state.entries if state is not None else ():
        if entry.event_id == event_id:
            return entry
    return None
