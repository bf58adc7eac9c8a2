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


def test_a_record_the_state_already_holds_is_written_again_for_the_changelog():
    """A replayed record whose change the local store kept (its changelog record lost in a
    kill) writes the state again, so the changelog gets the change."""
    import json

    from stream_app.processing import Processor
    from stream_app.settings import load
    from tests.builders import enrollment_value, person, settlement_value

    writes: list[str] = []

    class Recording(DictState):
        def put(self, key, state):
            writes.append(key)
            super().put(key, state)

    settings = load({})
    processor = Processor(settings, Recording(), Recording())
    who = person(5)
    bill = json.dumps(settlement_value("b1", who, "2020-01-01T09:00:00+08:00", "100")).encode()
    enrolled = json.dumps(enrollment_value("e1", who, "dibao", "active", "2020-01-01")).encode()
    for logical, raw in (("MEDICAL_SETTLEMENTS", bill), ("SUBSIDY_ENROLLMENTS", enrolled)):
        topic = settings.topic(logical)
        first = processor.process(topic, 0, 0, who.encode(), raw)
        again = processor.process(topic, 0, 0, who.encode(), raw)
        assert (first.outcome, again.outcome, again.emits) == (first.outcome, "duplicate", ())
    assert writes == [who] * 4


def test_rollback_forgets_only_the_current_records_writes():
    """A defect in one record of a batch drops that record's writes, not the batch's."""
    table: DictState[int] = DictState()
    table.put("a", 1)
    staged = StagedState(table)
    staged.begin()
    staged.put("a", 2)  # an earlier record of the batch
    staged.put("b", 3)
    staged.begin()
    staged.put("a", 4)  # the record that then raises
    staged.put("c", 5)
    staged.put("b", None)
    staged.rollback()
    assert (staged.get("a"), staged.get("b"), staged.get("c")) == (2, 3, None)
    staged.flush()
    assert table.data == {"a": 2, "b": 3}


class _Scope:
    """A stand-in for Faust's current event: the value ``current`` holds while a write happens."""

    def __init__(self) -> None:
        self.current: object = None

    def capture(self) -> object:
        return self.current

    def enter(self, captured: object) -> object:
        before, self.current = self.current, captured
        return before

    def leave(self, token: object) -> None:
        self.current = token


def test_each_key_is_flushed_in_the_scope_of_the_record_that_wrote_it_last():
    scope = _Scope()
    seen: dict[str, object] = {}

    class Recording(DictState[int]):
        def put(self, key: str, state: int | None) -> None:
            seen[key] = scope.current
            super().put(key, state)

    staged = StagedState(Recording(), scope)
    for event, key, value in (("event@p0", "a", 1), ("event@p3", "b", 2), ("event@p1", "a", 3)):
        scope.current = event  # the stream makes each record the current event in turn
        staged.put(key, value)
    scope.current = "the batch's last event"
    staged.flush()
    assert seen == {"a": "event@p1", "b": "event@p3"}
    assert scope.current == "the batch's last event"  # left as it was
