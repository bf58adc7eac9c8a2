"""The staged state layer: reads see staged writes; nothing reaches the table before flush."""

from __future__ import annotations

from stream_app.state import DictState, StagedState


def test_staged_writes_are_read_back_but_not_written_until_flush():
    table: DictState[int] = DictState()
    table.put("a", 1)
    staged = StagedState(table)
    staged.put("a", 2)
    staged.put("b", 3)
    staged.put("a", None)
    assert (staged.get("a"), staged.get("b")) == (None, 3)
    assert table.data == {"a": 1}
    staged.flush()
    assert table.data == {"b": 3} and staged.pending == 0


def test_discard_leaves_the_table_as_before_the_record():
    table: DictState[int] = DictState()
    table.put("a", 1)
    staged = StagedState(table)
    staged.put("a", 5)
    staged.discard()
    assert staged.get("a") == 1 and table.data == {"a": 1}


def test_several_writes_of_one_key_become_one():
    writes: list[tuple[str, int | None]] = []

    class Recording(DictState[int]):
        def put(self, key: str, state: int | None) -> None:
            writes.append((key, state))
            super().put(key, state)

    staged = StagedState(Recording())
    for n in range(5):
        staged.put("a", n)
    staged.flush()
    assert writes == [("a", 4)]
