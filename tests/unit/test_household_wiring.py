"""R7 wired into the per-record path: the person side's forwards, the household handler, the
internal topic's dead letters, and the runtime keeping each agent's staged state apart."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from stream_app.processing import HOUSEHOLD_TOPIC, DictState, Outcome, Processor
from stream_app.records import HouseholdSettlement, encode
from stream_app.runtime import Runtime
from stream_app.settings import load
from stream_app.state import StagedState
from tests.builders import enrollment_value, person, reversal_value, settlement_value

SETTINGS = load({})
WIFE, CHILD, SHAO = person(71), person(72), person(73)
HH = "HH-SHAO"


def raw(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode()


def settle(processor: Processor, value: dict[str, Any]) -> Any:
    topic = SETTINGS.topic("MEDICAL_SETTLEMENTS")
    return processor.process(topic, 0, 0, value["person_id"].encode(), raw(value))


def bill(eid: str, who: str, day: str, amount: str, **extra: Any) -> dict[str, Any]:
    return settlement_value(eid, who, f"{day}T10:00:00+08:00", amount, household_id=HH, **extra)


def forwarded(processed: Any) -> list[HouseholdSettlement]:
    return [e.value for e in processed.emits if e.topic == HOUSEHOLD_TOPIC]


def test_members_under_every_tier_cross_the_household_tiers_together_once_each():
    processor = Processor(SETTINGS, DictState(), DictState())
    feed = [
        bill("w1", WIFE, "2019-01-10", "16000"),
        bill("w2", WIFE, "2019-02-10", "12000"),
        bill("c1", CHILD, "2019-03-10", "14000"),
        bill("s1", SHAO, "2019-04-10", "29000"),
        bill("s1", SHAO, "2019-04-10", "29000"),  # redelivered
    ]
    outputs = [e for value in feed for e in processor.with_households(settle(processor, value))]
    assert all(e.topic == "ASSISTANCE_WARNINGS" for e in outputs)
    got = [
        (
            e.key,
            e.value.rule,
            e.value.tier,
            e.value.rolling_self_pay,
            e.value.suggested_amount,
            e.value.caused_by,
        )
        for e in outputs
    ]
    assert got == [
        (HH.encode(), "HOUSEHOLD_SELF_PAY", "30000.00", "42000.00", "16000.00", "c1"),
        (HH.encode(), "HOUSEHOLD_SELF_PAY", "50000.00", "71000.00", "30000.00", "s1"),  # R8's cap
    ]
    last = outputs[-1].value
    assert (last.person_id, last.household_id, last.members) == (SHAO, HH, tuple(sorted((WIFE, CHILD, SHAO))))
    assert last.evidence == ("w1", "w2", "c1", "s1")


def test_a_forward_carries_the_members_hardship_flag_and_a_reversal_finds_its_household():
    processor = Processor(SETTINGS, DictState(), DictState())
    enrolled = enrollment_value("e1", WIFE, "dibao", "active", "2018-01-01")
    processor.process(SETTINGS.topic("SUBSIDY_ENROLLMENTS"), 0, 0, WIFE.encode(), raw(enrolled))
    placed = settle(processor, bill("w1", WIFE, "2019-01-10", "16000"))
    processor.feed_back(placed)
    [first] = forwarded(placed)
    assert (first.household_id, first.self_pay_fen, first.hardship_holder) == (HH, 1_600_000, True)
    # A reversal need not repeat the household: it goes to the one of the settlement it cancels.
    cancel = reversal_value("w1-r", WIFE, "2019-01-11T10:00:00+08:00", "w1")
    processed = settle(processor, cancel)
    assert processed.outcome is Outcome.REVERSED
    [back] = forwarded(processed)
    assert (back.household_id, back.kind, back.reverses) == (HH, "reversal", "w1")
    [household] = processor.feed_back(processed)
    assert household.outcome is Outcome.REVERSED
    assert processor.household_state.get(HH).rolling_fen == 0


def test_a_duplicate_is_not_forwarded_and_a_settlement_without_household_is_not_either():
    processor = Processor(SETTINGS, DictState(), DictState())
    assert len(forwarded(settle(processor, bill("w1", WIFE, "2019-01-10", "100")))) == 1
    again = settle(processor, bill("w1", WIFE, "2019-01-10", "100"))
    assert again.outcome is Outcome.DUPLICATE and forwarded(again) == []
    alone = settle(processor, settlement_value("x1", WIFE, "2019-01-12T10:00:00+08:00", "100"))
    assert alone.outcome is Outcome.COUNTED and forwarded(alone) == []


def test_the_same_forward_processed_twice_counts_once():
    # A worker killed after the forward was acknowledged but before the person's state was
    # written replays the settlement: the same bytes reach the household topic twice.
    processor = Processor(SETTINGS, DictState(), DictState())
    [value] = forwarded(settle(processor, bill("w1", WIFE, "2019-01-10", "31000")))
    topic = SETTINGS.topic(HOUSEHOLD_TOPIC)
    first = processor.process(topic, 0, 0, HH.encode(), encode(value))
    second = processor.process(topic, 0, 1, HH.encode(), encode(value))
    assert [e.value.rule for e in first.emits] == ["HOUSEHOLD_SELF_PAY"]
    assert (second.outcome, second.emits) == (Outcome.DUPLICATE, ())


def test_bad_values_on_the_household_topic_are_dead_letters():
    processor = Processor(SETTINGS, DictState(), DictState())
    [value] = forwarded(settle(processor, bill("w1", WIFE, "2019-01-10", "100")))
    topic = SETTINGS.topic(HOUSEHOLD_TOPIC)
    good = json.loads(encode(value))
    cases = {
        "json": (HH.encode(), b"{nope"),
        "key": (b"HH-OTHER", encode(value)),
        "schema": (HH.encode(), raw({**good, "self_pay_fen": -1})),
    }
    for error_class, (key, data) in cases.items():
        processed = processor.process(topic, 3, 9, key, data)
        assert (processed.outcome, processed.error_class) == (Outcome.DEAD_LETTER, error_class)
        [letter] = processed.emits
        assert (letter.topic, letter.value.topic, letter.value.partition) == ("DEADLETTER", topic, 3)
    naive = raw({**good, "settled_at": "2019-01-10T10:00:00"})
    assert processor.process(topic, 0, 0, HH.encode(), naive).error_class == "schema"


def test_each_agent_saves_and_discards_only_its_own_staged_state():
    medical, status, households = StagedState(DictState()), StagedState(DictState()), StagedState(DictState())
    processor = Processor(SETTINGS, medical, status, households)
    runtime = Runtime(SETTINGS, processor, medical, status, outputs={}, household_state=households)
    person_topic, household_topic = SETTINGS.topic("MEDICAL_SETTLEMENTS"), SETTINGS.topic(HOUSEHOLD_TOPIC)
    processed = runtime.process(person_topic, 0, 0, WIFE.encode(), raw(bill("w1", WIFE, "2019-01-10", "100")))
    [item] = [e for e in processed.emits if e.topic == HOUSEHOLD_TOPIC]
    runtime.process(household_topic, 0, 0, HH.encode(), encode(item.value))
    assert (medical.pending, households.pending) == (1, 1)
    asyncio.run(
        runtime.save_state(household_topic)
    )  # the household agent's outputs are delivered, not the person's
    assert (medical.pending, households.pending) == (1, 0)
    runtime.discard_state(person_topic)
    assert medical.pending == 0 and households.backing.get(HH) is not None
