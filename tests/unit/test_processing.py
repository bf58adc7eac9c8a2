"""The per-record path's shape: handlers per input kind, a typed outcome, status read only when needed."""

from __future__ import annotations

import json
from typing import Any

from stream_app.metrics import Metrics
from stream_app.processing import DictState, Outcome, Processor
from stream_app.records import MedicalSettlement, Output
from stream_app.runtime import Runtime
from stream_app.settings import load
from stream_app.state import StagedState
from tests.builders import (
    REGION,
    death_value,
    disability_value,
    enrollment_value,
    person,
    settlement_value,
)

SETTINGS = load({})
WHO = person(41)


def raw(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode()


class CountingState(DictState[Any]):
    """A DictState that counts its reads."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.get = self._counted_get  # type: ignore[method-assign]

    def _counted_get(self, key: str) -> Any:
        self.reads += 1
        return self.data.get(key)


def feed(processor: Processor, logical: str, value: dict[str, Any] | bytes, offset: int = 0) -> Any:
    data = value if isinstance(value, bytes) else raw(value)
    return processor.process(SETTINGS.topic(logical), 0, offset, WHO.encode(), data)


def withdrawal_value(eid: str, withdraws: str) -> dict[str, Any]:
    return {
        "event_id": eid,
        "person_id": WHO,
        "region_code": REGION,
        "registered_at": "2019-05-01T09:00:00+08:00",
        "status": "withdrawn",
        "withdraws": withdraws,
    }


def dead_letters(metrics: Metrics, topic: str, error_class: str) -> float | None:
    return metrics.registry.get_sample_value(
        "benefit_integrity_dead_letters_total", {"topic": topic, "error_class": error_class}
    )


def test_a_dead_letters_class_is_on_the_outcome_and_reaches_the_metric():
    processor = Processor(SETTINGS, DictState(), DictState())
    processed = feed(processor, "MEDICAL_SETTLEMENTS", b"{not json")
    assert (processed.outcome, processed.error_class) == (Outcome.DEAD_LETTER, "json")
    metrics = Metrics()
    topic = SETTINGS.topic("MEDICAL_SETTLEMENTS")
    metrics.observe(topic, 0, 0, None, processed)
    assert dead_letters(metrics, topic, "json") == 1


def test_a_record_whose_processing_raises_is_counted_as_an_internal_dead_letter():
    medical, status = StagedState(DictState()), StagedState(DictState())
    processor = Processor(SETTINGS, medical, status)
    runtime = Runtime(SETTINGS, processor, medical, status, outputs={})

    def boom(rec: Any) -> Any:
        raise ValueError("a defect")

    processor.register("DEATH_REGISTRATIONS", boom)
    topic = SETTINGS.topic("DEATH_REGISTRATIONS")
    processed = runtime.process(topic, 2, 7, WHO.encode(), raw(death_value("d1", WHO, "2020-01-01")))
    runtime.observe(topic, 2, 7, None, processed)
    assert (processed.outcome, processed.error_class) == (Outcome.DEAD_LETTER, "internal")
    assert dead_letters(runtime.metrics, topic, "internal") == 1
    assert runtime.positions[(topic, 2)] == 8


def test_a_settlement_reads_the_status_state_only_for_r4_or_a_warning():
    status = CountingState()
    processor = Processor(SETTINGS, DictState(), status)
    bill = settlement_value("b1", WHO, "2020-01-01T09:00:00+08:00", "100")
    assert feed(processor, "MEDICAL_SETTLEMENTS", bill).outcome is Outcome.COUNTED
    assert status.reads == 1  # placed in the window: R4 asks whether a death is in force
    assert feed(processor, "MEDICAL_SETTLEMENTS", bill).outcome is Outcome.DUPLICATE
    reversal = {**settlement_value("r1", WHO, "2020-01-02T09:00:00+08:00", "100"), "kind": "reversal"}
    reversal["reverses"] = "b1"
    assert feed(processor, "MEDICAL_SETTLEMENTS", reversal).outcome is Outcome.REVERSED
    unknown = {**reversal, "event_id": "r2", "reverses": "nothing"}
    assert feed(processor, "MEDICAL_SETTLEMENTS", unknown).outcome is Outcome.UNKNOWN_REVERSAL
    assert status.reads == 1  # neither a duplicate nor a reversal without a warning read it


def test_a_warning_for_a_hardship_holder_says_so_and_for_others_not():
    processor = Processor(SETTINGS, DictState(), DictState())
    holder, other = person(42), person(43)
    topic = SETTINGS.topic("MEDICAL_SETTLEMENTS")
    enrolled = raw(enrollment_value("e1", holder, "dibao", "active", "2019-01-01"))
    processor.process(SETTINGS.topic("SUBSIDY_ENROLLMENTS"), 0, 0, holder.encode(), enrolled)
    flags = []
    for who in (holder, other):
        bill = raw(settlement_value(f"b-{who}", who, "2020-01-01T09:00:00+08:00", "31000"))
        [emit] = processor.process(topic, 0, 1, who.encode(), bill).emits
        flags.append(emit.value.hardship_holder)
    assert flags == [True, False]


def test_a_registered_handler_gets_its_topics_records_decoded_and_its_outcome_is_kept():
    seen: list[Any] = []

    def handler(rec: MedicalSettlement) -> tuple[tuple[Output, ...], Outcome]:
        seen.append(rec)
        return (), Outcome.APPLIED

    processor = Processor(SETTINGS, DictState(), DictState())
    processor.register("MEDICAL_SETTLEMENTS", handler)
    bill = settlement_value("b1", WHO, "2020-01-01T09:00:00+08:00", "5")
    processed = feed(processor, "MEDICAL_SETTLEMENTS", bill)
    assert [type(r) for r in seen] == [MedicalSettlement] and seen[0].event_id == "b1"
    assert (processed.outcome, processed.event_id, processed.emits) == (Outcome.APPLIED, "b1", ())
    # The other kinds keep their own handlers.
    death = feed(processor, "DEATH_REGISTRATIONS", death_value("d1", WHO, "2020-01-01"), 1)
    assert death.outcome is Outcome.DEATH_REGISTERED


def test_every_status_outcome_is_typed():
    processor = Processor(SETTINGS, DictState(), DictState())
    steps = [
        ("SUBSIDY_ENROLLMENTS", enrollment_value("e1", WHO, "dibao", "active", "2019-01-01")),
        ("SUBSIDY_ENROLLMENTS", enrollment_value("e2", WHO, "dibao", "active", "2019-02-01", "600")),
        ("SUBSIDY_ENROLLMENTS", enrollment_value("e3", WHO, "dibao", "ended", "2019-03-01")),
        ("SUBSIDY_ENROLLMENTS", enrollment_value("e4", WHO, "tekun", "ended", "2019-03-01")),
        ("DISABILITY_REGISTRATIONS", disability_value("c1", WHO, "certified", "2019-01-01", level=3)),
        ("DISABILITY_REGISTRATIONS", disability_value("c2", WHO, "revoked", "2019-02-01")),
        ("DISABILITY_REGISTRATIONS", disability_value("c3", WHO, "expired", "2019-03-01")),
        ("DEATH_REGISTRATIONS", death_value("d1", WHO, "2019-04-01")),
        ("DEATH_REGISTRATIONS", death_value("d2", WHO, "2019-04-02")),
        ("DEATH_REGISTRATIONS", withdrawal_value("w1", "d1")),
        ("DEATH_REGISTRATIONS", withdrawal_value("w2", "d1")),
    ]
    outcomes = [feed(processor, logical, value, n).outcome for n, (logical, value) in enumerate(steps)]
    assert all(isinstance(o, Outcome) for o in outcomes)
    assert outcomes == [
        Outcome.ENROLLMENT_STARTED,
        Outcome.ENROLLMENT_UPDATED,
        Outcome.ENROLLMENT_ENDED,
        Outcome.ENDED_NOT_ACTIVE,
        Outcome.DISABILITY_CERTIFIED,
        Outcome.DISABILITY_REVOKED,
        Outcome.DISABILITY_EXPIRED,
        Outcome.DEATH_REGISTERED,
        Outcome.DEATH_ALREADY_IN_FORCE,
        Outcome.DEATH_WITHDRAWN,
        Outcome.IGNORED_WITHDRAWAL,
    ]
