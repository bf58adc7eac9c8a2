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


_DELETED = object()
_ABSENT = object()


class WriteScope(Protocol):
    """What a backing takes from the ambient context when it is written: captured at ``put``,
    in force again at ``flush``.

    Faust's tables take a write's partition (its RocksDB and its changelog partition) from
    the event being processed. When the writes of a batch of records are flushed after the
    batch, each key must be written as from the record that wrote it, not from the batch's
    last record, which may be of another partition.
    """

    def capture(self) -> object: ...

    def enter(self, captured: object) -> object:
        """Put the captured context in force; return what ``leave`` needs to undo it."""
        ...

    def leave(self, token: object) -> None: ...


class StagedState(Generic[S]):
    """A write-back layer over a state: writes wait in memory until ``flush`` or ``discard``.

    Several writes of one key between two flushes become one write of the last value.
    ``begin`` marks the start of a record and ``rollback`` forgets that record's writes only,
    so one record's defect never throws away the staged writes of the records before it in
    a batch.
    """

    def __init__(self, backing: StateAccess[S], scope: WriteScope | None = None) -> None:
        self.backing = backing
        self.scope = scope
        #: key -> (state or _DELETED, the scope captured when it was written)
        self._staged: dict[str, tuple[object, object]] = {}
        #: key -> its staged entry before the current record (or _ABSENT), for ``rollback``
        self._undo: dict[str, object] = {}

    def get(self, key: str) -> S | None:
        staged = self._staged.get(key)
        if staged is None:
            return self.backing.get(key)
        state = staged[0]
        return None if state is _DELETED else state  # type: ignore[return-value]

    def put(self, key: str, state: S | None) -> None:
        staged = self._staged
        if key not in self._undo:
            self._undo[key] = staged.get(key, _ABSENT)
        origin = None if self.scope is None else self.scope.capture()
        staged[key] = (_DELETED if state is None else state, origin)

    @property
    def pending(self) -> int:
        return len(self._staged)

    def begin(self) -> None:
        """A new record starts: what ``rollback`` would undo starts here."""
        if self._undo:
            self._undo.clear()

    def rollback(self) -> None:
        """Forget the writes staged since ``begin``; the earlier records' writes stay staged."""
        for key, before in self._undo.items():
            if before is _ABSENT:
                self._staged.pop(key, None)
            else:
                self._staged[key] = before  # type: ignore[assignment]
        self._undo.clear()

    def flush(self) -> None:
        """Write every staged state to the backing state (and so to its changelog), each key
        in the scope of the record that wrote it last."""
        staged, self._staged = self._staged, {}
        self._undo.clear()
        put, scope = self.backing.put, self.scope
        if scope is None:
            for key, (state, _) in staged.items():
                put(key, None if state is _DELETED else state)  # type: ignore[arg-type]
            return
        for key, (state, origin) in staged.items():
            token = scope.enter(origin)
            try:
                put(key, None if state is _DELETED else state)  # type: ignore[arg-type]
            finally:
                scope.leave(token)

    def discard(self) -> None:
        """Forget every staged write: the backing state stays as before them."""
        self._staged.clear()
        self._undo.clear()
