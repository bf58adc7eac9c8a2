"""The one layer between rules and tables: typed get/put over a table of msgpack bytes.

Every state read and write of the worker goes through here, so that writes can be
coalesced per commit later without touching agents or rules. Keep the Faust table
duck-typed: this module imports no Faust.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Generic, TypeVar

import msgspec

S = TypeVar("S")


class TableState(Generic[S]):
    """Per-person state of one type in one changelog-backed table, keyed by person_id."""

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
