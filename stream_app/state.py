"""The one layer between rules and tables: typed get/put, and writes held back until outputs are safe.

Every state read and write of the worker goes through here. ``StagedState`` keeps
the writes of the records in hand in memory (reads see them) until the caller
``flush``es them, which the agent does only after the broker has acknowledged
those records' outputs. A kill at any instant then leaves either the old state
(the record is replayed and sends the same outputs again, same ids) or the new
state with its outputs already delivered. Keep the Faust table duck-typed: this
module imports no Faust.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Generic, Protocol, TypeVar

import msgspec

S = TypeVar("S")


class StateAccess(Protocol[S]):
    """Per-person state by key: a Faust table in the worker, a dict in a backtest."""

    def get(self, key: str) -> S | None: ...

    def put(self, key: str, state: S | None) -> None: ...


class DictState(Generic[S]):
    """State in a plain dict (backtest, demo expectations, tests)."""

    def __init__(self) -> None:
        self.data: dict[str, S] = {}
        self.get = self.data.get  # type: ignore[method-assign,assignment]  # the dict's own get: no extra call

    def get(self, key: str) -> S | None:
        return self.data.get(key)

    def put(self, key: str, state: S | None) -> None:
        if state is None:
            self.data.pop(key, None)
        else:
            self.data[key] = state


class TableState(Generic[S]):
    """Per-person state of one type in one changelog-backed table of msgpack bytes."""

    def __init__(self, table: MutableMapping[str, bytes], state_type: type[S]) -> None:
        self.table = table
        self._decoder = msgspec.msgpack.Decoder(state_type)
        self._encoder = msgspec.msgpack.Encoder()

    def get(self, key: str) -> S | None:
        raw = self.table.get(key)
        return None if raw is None else self._decoder.decode(raw)

    def put(self, key: str, state: S | None) -> None:
        # Assign back (never mutate in place): the assignment is what writes the changelog.
        if state is None:
            self.table.pop(key, None)
        else:
            self.table[key] = self._encoder.encode(state)


class StagedState(Generic[S]):
    """A write-back layer over a state: writes wait in memory until ``flush`` or ``discard``.

    Several writes of one key between two flushes become one write of the last value.
    """

    def __init__(self, backing: StateAccess[S]) -> None:
        self.backing = backing
        self._staged: dict[str, S | None] = {}  # None: delete the key

    def get(self, key: str) -> S | None:
        if key in self._staged:
            return self._staged[key]
        return self.backing.get(key)

    def put(self, key: str, state: S | None) -> None:
        self._staged[key] = state

    @property
    def pending(self) -> int:
        return len(self._staged)

    def flush(self) -> None:
        """Write every staged state to the backing state (and so to its changelog)."""
        staged, self._staged = self._staged, {}
        for key, state in staged.items():
            self.backing.put(key, state)

    def discard(self) -> None:
        """Forget the staged writes: the backing state stays as before them."""
        self._staged.clear()
