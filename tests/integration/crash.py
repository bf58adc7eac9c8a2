"""The crash harness: a generated multi-topic feed, a real worker killed and restarted at random.

Every output is then compared, id and content (``emitted_at`` aside), with the pure
``Processor`` over the same records, and the group's committed offsets must reach the
end of every input partition.

The feed is built so that the order of arrival across topics, which no one promises,
cannot change the expected outputs: phase 1 (enrollments) is committed before phase 2
starts, and in phase 2 each person has records in one topic only. Within a topic, a
person's records keep their order (one key, one partition). Households (R7) have two
members on their own partitions, one with bills in phase 1 and one in phase 2: the first
member's forwards are then ahead of the second's on the internal household topic, whatever
the kills, as the pure expectation (which runs the household side too) takes them.
"""

from __future__ import annotations

import json
import random
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from stream_app.processing import HOUSEHOLD_TOPIC, DictState, Processor
from stream_app.records import encode
from stream_app.settings import load
from stream_app.topology import INPUT_TOPICS as INPUTS
from stream_app.topology import OUTPUT_TOPICS as OUTPUTS
from tests.builders import REGION, person
from tests.integration.outputs import consumed_total
from tests.waiting import wait_until

Record = tuple[str, bytes | None, bytes]  # logical topic, key, value


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def _day(rng: random.Random, start: date, span_days: int) -> date:
    return start + timedelta(days=rng.randrange(span_days))


def _money(rng: random.Random, low: int, high: int) -> str:
    fen = rng.randrange(low * 100, high * 100)
    return f"{fen // 100}.{fen % 100:02d}"


@dataclass
class Feed:
    phase1: list[Record] = field(default_factory=list)
    phase2: list[Record] = field(default_factory=list)


def generate(seed: int, people: int, person_id: Callable[[int], str] = person) -> Feed:
    """About ``people`` persons per story; ~10 records per 1 person of each story.

    ``person_id`` makes the n-th identity number (``person`` repeats after 10,000: large
    feeds pass one that does not).
    """
    rng = random.Random(seed)
    feed = Feed()
    ids = iter(range(seed * 100_000, seed * 100_000 + 100_000))

    def who() -> str:
        return person_id(next(ids))

    def enrollment(eid: str, pid: str, program: str, status: str, on: date, amount: str) -> Record:
        value = {
            "event_id": eid,
            "person_id": pid,
            "region_code": REGION,
            "program": program,
            "status": status,
            "monthly_amount": amount,
            "effective_on": on.isoformat(),
        }
        return ("SUBSIDY_ENROLLMENTS", pid.encode(), _json(value))

    def death(eid: str, pid: str, died_on: date, registered: date) -> Record:
        value = {
            "event_id": eid,
            "person_id": pid,
            "region_code": REGION,
            "died_on": died_on.isoformat(),
            "registered_at": f"{registered.isoformat()}T10:00:00+08:00",
        }
        return ("DEATH_REGISTRATIONS", pid.encode(), _json(value))

    def withdrawal(eid: str, pid: str, withdraws: str, at: date) -> Record:
        value = {
            "event_id": eid,
            "person_id": pid,
            "region_code": REGION,
            "registered_at": f"{at.isoformat()}T10:00:00+08:00",
            "status": "withdrawn",
            "withdraws": withdraws,
        }
        return ("DEATH_REGISTRATIONS", pid.encode(), _json(value))

    def disability(eid: str, pid: str, status: str, on: date, level: int | None = None) -> Record:
        value: dict[str, Any] = {
            "event_id": eid,
            "person_id": pid,
            "region_code": REGION,
            "status": status,
            "effective_on": on.isoformat(),
        }
        if level is not None:
            value["level"] = level
        return ("DISABILITY_REGISTRATIONS", pid.encode(), _json(value))

    # Deaths: several programs each, so one death record gives several stops (and a
    # withdrawal several resumes); some withdrawn, some registered again afterwards.
    for n in range(people):
        pid = who()
        died_on = _day(rng, date(2019, 1, 1), 700)
        programs = rng.sample(
            ["dibao", "disability_living", "disability_nursing", "elderly_care"], rng.randint(2, 4)
        )
        for program in programs:
            on = _day(rng, date(2015, 1, 1), 2000)  # some after died_on: DECEASED_ENROLLMENT
            feed.phase1.append(
                enrollment(f"en-{n}-{program}", pid, program, "active", on, _money(rng, 300, 2000))
            )
            if rng.random() < 0.3:  # a new amount in the same episode
                feed.phase1.append(
                    enrollment(f"en-{n}-{program}-2", pid, program, "active", on, _money(rng, 300, 2000))
                )
        registered = died_on + timedelta(days=rng.randrange(0, 300))
        feed.phase2.append(death(f"dr-{n}", pid, died_on, registered))
        if rng.random() < 0.35:
            feed.phase2.append(withdrawal(f"dw-{n}", pid, f"dr-{n}", registered + timedelta(days=20)))
            if rng.random() < 0.5:
                again = died_on + timedelta(days=rng.randrange(1, 60))
                feed.phase2.append(death(f"dr-{n}-b", pid, again, registered + timedelta(days=40)))

    # Disability: a level-3 certification stops nursing; a revocation then stops both.
    for n in range(people):
        pid = who()
        since = _day(rng, date(2015, 1, 1), 1500)
        feed.phase1.append(enrollment(f"el-{n}", pid, "disability_living", "active", since, "150.00"))
        feed.phase1.append(enrollment(f"eu-{n}", pid, "disability_nursing", "active", since, "200.00"))
        certified = _day(rng, date(2019, 6, 1), 300)
        feed.phase2.append(disability(f"cl-{n}", pid, "certified", certified, level=rng.choice([3, 4])))
        if rng.random() < 0.6:
            feed.phase2.append(disability(f"cr-{n}", pid, "revoked", certified + timedelta(days=90)))
    # Level 1-2 without the nursing subsidy: one eligibility warning each.
    for n in range(people // 2):
        pid = who()
        feed.phase2.append(
            disability(
                f"cs-{n}", pid, "certified", _day(rng, date(2019, 1, 1), 500), level=rng.choice([1, 2])
            )
        )

    # Exclusive programs: dibao and tekun at once, twice (a new tekun episode is a new pair).
    for n in range(people // 2):
        pid = who()
        feed.phase1.append(enrollment(f"xd-{n}", pid, "dibao", "active", date(2018, 1, 1), "900.00"))
        feed.phase1.append(enrollment(f"xt-{n}", pid, "tekun", "active", date(2018, 6, 1), "1200.00"))
        feed.phase1.append(enrollment(f"xe-{n}", pid, "tekun", "ended", date(2018, 9, 1), "0"))
        feed.phase1.append(enrollment(f"xt2-{n}", pid, "tekun", "active", date(2019, 3, 1), "1250.00"))

    # Medical: bills that cross tiers, with reversals, redeliveries and late bills.
    for n in range(people * 2):
        pid = who()
        at = datetime(2019, 1, 1, 9, 0) + timedelta(days=rng.randrange(200))
        sent: list[dict[str, Any]] = []
        for k in range(rng.randint(4, 10)):
            late = rng.random() < 0.15 and sent
            when = at - timedelta(days=rng.randrange(1, 100)) if late else at
            value = {
                "event_id": f"ms-{n}-{k}",
                "person_id": pid,
                "region_code": REGION,
                "settled_at": when.strftime("%Y-%m-%dT%H:%M:%S+08:00"),
                "total_cost": _money(rng, 20000, 60000),
                "self_pay": _money(rng, 1000, 22000),
            }
            feed.phase2.append(("MEDICAL_SETTLEMENTS", pid.encode(), _json(value)))
            sent.append(value)
            if rng.random() < 0.15:  # redelivered by the source
                feed.phase2.append(("MEDICAL_SETTLEMENTS", pid.encode(), _json(value)))
            if rng.random() < 0.2:
                target = rng.choice(sent)
                reversal = {
                    "event_id": f"mr-{n}-{k}",
                    "person_id": pid,
                    "region_code": REGION,
                    "settled_at": at.strftime("%Y-%m-%dT%H:%M:%S+08:00"),
                    "kind": "reversal",
                    "reverses": target["event_id"],
                }
                feed.phase2.append(("MEDICAL_SETTLEMENTS", pid.encode(), _json(reversal)))
            at += timedelta(days=rng.randrange(5, 60))

    # Households (R7): two members each, bills of one member per phase (see the module's text),
    # with redeliveries and a reversal that names no household (it goes to its original's).
    for n in range(people // 3):
        household = f"hh-{seed}-{n}"
        at = datetime(2019, 3, 1, 9, 0) + timedelta(days=rng.randrange(100))
        for m, phase in enumerate((feed.phase1, feed.phase2)):
            pid = who()
            sent = []
            for k in range(rng.randint(2, 4)):
                value = {
                    "event_id": f"mh-{n}-{m}-{k}",
                    "person_id": pid,
                    "region_code": REGION,
                    "household_id": household,
                    "settled_at": at.strftime("%Y-%m-%dT%H:%M:%S+08:00"),
                    "total_cost": _money(rng, 20000, 40000),
                    "self_pay": _money(rng, 4000, 14000),
                }
                phase.append(("MEDICAL_SETTLEMENTS", pid.encode(), _json(value)))
                sent.append(value)
                if rng.random() < 0.15:  # redelivered by the source
                    phase.append(("MEDICAL_SETTLEMENTS", pid.encode(), _json(value)))
                if rng.random() < 0.15:
                    reversal = {
                        "event_id": f"mhr-{n}-{m}-{k}",
                        "person_id": pid,
                        "region_code": REGION,
                        "settled_at": at.strftime("%Y-%m-%dT%H:%M:%S+08:00"),
                        "kind": "reversal",
                        "reverses": rng.choice(sent)["event_id"],
                    }
                    phase.append(("MEDICAL_SETTLEMENTS", pid.encode(), _json(reversal)))
                at += timedelta(days=rng.randrange(5, 40))

    # Bad input among the good, on every topic (dead letters are outputs too).
    for phase in (feed.phase1, feed.phase2):
        for n in range(max(2, len(phase) // 100)):
            logical = rng.choice(INPUTS if phase is feed.phase2 else ("SUBSIDY_ENROLLMENTS",))
            pid = who()
            bad = rng.choice(
                [
                    (pid.encode(), b"{not json"),
                    (pid.encode(), _json({"event_id": f"bad-{n}", "person_id": pid})),
                    (person(7).encode(), _json({"event_id": f"bad-{n}", "person_id": pid})),
                    (pid.encode(), b"\xff\xfe binary"),
                ]
            )
            phase.insert(rng.randrange(len(phase) + 1), (logical, *bad))
    # Same-topic order per person is kept; across persons, interleave as sources would.
    return Feed(_interleave(rng, feed.phase1), _interleave(rng, feed.phase2))


def _interleave(rng: random.Random, records: list[Record]) -> list[Record]:
    """Shuffle across keys while keeping each (topic, key)'s own order."""
    queues: dict[tuple[str, bytes | None], list[Record]] = defaultdict(list)
    for record in records:
        queues[(record[0], record[1])].append(record)
    order = [k for k, q in queues.items() for _ in q]
    rng.shuffle(order)
    heads = {k: iter(q) for k, q in queues.items()}
    return [next(heads[k]) for k in order]


# -- running it -----------------------------------------------------------------------


FAULT_KINDS = ("kill", "kill", "kill-in-recovery", "sigterm-backlog", "second-worker")


@dataclass
class Sent:
    logical: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


@dataclass
class Harness:
    """Drives one worker at a time through faults while the feed is produced."""

    make_worker: Callable[..., Any]
    kafka: Any
    env: dict[str, str]
    rng: random.Random
    sent: list[Sent] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    dirs: Iterator[int] = field(default_factory=lambda: iter(range(1000)))
    #: Fault kinds drawn from (a kind twice is drawn twice as often).
    kinds: tuple[str, ...] = FAULT_KINDS

    def __post_init__(self) -> None:
        self.data_dir = f"state-{next(self.dirs)}"
        self.worker = self.make_worker(self.data_dir).start()

    def produce(self, records: list[Record]) -> None:
        futures = [
            (logical, key, value, self.kafka.producer.send(self.kafka.topics[logical], key=key, value=value))
            for logical, key, value in records
        ]
        self.kafka.producer.flush()
        for logical, key, value, future in futures:
            meta = future.get(timeout=30)
            self.sent.append(Sent(logical, meta.partition, meta.offset, key, value))

    def consumed(self) -> int | None:
        """Records this worker process has finished (state written), from its /metrics."""
        status, body = self.worker.get("/metrics")
        return int(consumed_total(body)) if status == 200 else None

    def _restart(self, empty: bool, wait_ready: bool = False) -> None:
        if empty:
            self.data_dir = f"state-{next(self.dirs)}"
        self.worker = self.make_worker(self.data_dir).start(wait_ready=wait_ready)

    def fault(self, chunks: Iterator[list[Record]]) -> None:
        """One fault at a random instant of processing; may produce chunks while the worker is down."""
        kind = self.rng.choice(self.kinds)
        empty = self.rng.random() < 0.4
        self.faults.append(f"{kind} ({'empty' if empty else 'same'} data dir)")
        if kind == "kill":
            self.worker.stop(signal.SIGKILL)
            self._restart(empty)
        elif kind == "kill-in-recovery":
            self.worker.stop(signal.SIGKILL)
            self._restart(empty)
            # A fault-injection delay, not a wait for readiness: the kill is meant to land
            # while the restarted worker joins the group and rebuilds its tables.
            time.sleep(self.rng.uniform(1.0, 8.0))
            self.worker.stop(signal.SIGKILL)
            self._restart(self.rng.random() < 0.4)
        elif kind == "second-worker":
            # A rebalance under load: another worker joins (its own, empty data dir), takes
            # half the partitions while records flow, and leaves (gracefully or killed).
            second = self.make_worker(f"state-{next(self.dirs)}").start(wait_ready=False)
            for _ in range(self.rng.randint(2, 4)):
                self.produce(next(chunks, []))
            second.wait_ready()
            self.answers_from_either(second)
            self.produce(next(chunks, []))
            how = self.rng.choice([signal.SIGTERM, signal.SIGKILL])
            self.faults[-1] = f"second worker joined, then {'stopped' if how == signal.SIGTERM else 'killed'}"
            second.stop(how)
        else:
            self.worker.wait_ready()  # a graceful stop of a running worker (one still starting dies of it)
            assert self.worker.stop(signal.SIGTERM) == 0, self.worker.log_tail()
            for _ in range(self.rng.randint(1, 3)):  # a backlog waits for the restart
                self.produce(next(chunks, []))
            self._restart(empty)

    def answers_from_either(self, second: Any) -> None:
        """While two workers share the partitions, either one answers for a person (it forwards)."""
        self.worker.wait_ready()
        enrolled = [s.key.decode() for s in self.sent if s.logical == "SUBSIDY_ENROLLMENTS" and s.key]
        for who in self.rng.sample(enrolled, min(5, len(enrolled))):
            answers = [w.get(f"/persons/{who}") for w in (self.worker, second)]
            # 404 is a person whose key was only ever in bad records; 503 a rebalance under way.
            assert all(status in (200, 404, 503) for status, _ in answers), (who, answers)
            bodies = [body["person_id"] for status, body in answers if status == 200]
            assert all(b == who for b in bodies), (who, answers)

    def run_phase(self, records: list[Record], chunk: int, faults: int) -> None:
        """Produce the records in chunks, with ``faults`` faults spread at random between them."""
        pieces = [records[i : i + chunk] for i in range(0, len(records), chunk)]
        at = sorted(self.rng.sample(range(1, max(2, len(pieces))), min(faults, max(1, len(pieces) - 1))))
        chunks = iter(pieces)
        for n, piece in enumerate(chunks, 1):
            if not (at and n >= at[0]):
                self.produce(piece)
                time.sleep(self.rng.uniform(0.0, 0.4))  # sources are bursty
                continue
            # Strike while the worker is busy with this chunk: after a random number of its
            # records are through, so the fault falls between two steps of some record.
            base = self.consumed()
            self.produce(piece)
            if base is not None:
                target = base + self.rng.randint(1, max(1, len(piece) - 1))
                deadline = time.monotonic() + 30
                while (self.consumed() or 0) < target and time.monotonic() < deadline:
                    pass  # polling as fast as the worker answers: the next record is ~1 ms away
            while at and n >= at[0]:
                at.pop(0)
                self.fault(chunks)

    def end_offsets(self) -> dict[tuple[str, int], int]:
        ends: dict[tuple[str, int], int] = {}
        for s in self.sent:
            topic = self.kafka.topics[s.logical]
            ends[(topic, s.partition)] = max(ends.get((topic, s.partition), 0), s.offset + 1)
        return ends

    def wait_committed_to_end(self, timeout: float = 240) -> None:
        ends = self.end_offsets()
        reader = KafkaConsumer(
            bootstrap_servers=[self.kafka.address],
            group_id=self.env["STREAM_APP_APP_ID"],
            enable_auto_commit=False,
        )
        try:

            def behind() -> dict[tuple[str, int], int]:
                if self.worker.proc.poll() is not None:
                    raise AssertionError(f"worker exited:\n{self.worker.log_tail()}")
                lag = {}
                for (topic, partition), end in ends.items():
                    committed = reader.committed(TopicPartition(topic, partition)) or 0
                    if committed < end:
                        lag[(topic, partition)] = end - committed
                return lag

            try:
                wait_until(
                    lambda: not behind(), timeout, "committed offsets at the end of every input partition"
                )
                # Then the household topic: every forward was acknowledged before the inputs
                # that caused it were committed, so its end is known now.
                internal = self.kafka.topics[HOUSEHOLD_TOPIC]
                parts = [TopicPartition(internal, p) for p in reader.partitions_for_topic(internal) or ()]
                ends.update({(tp.topic, tp.partition): end for tp, end in reader.end_offsets(parts).items()})
                wait_until(
                    lambda: not behind(), timeout, "committed offsets at the end of the household topic"
                )
            except AssertionError as exc:
                raise AssertionError(f"{exc}; still behind: {behind()}\n{self.worker.log_tail()}") from None
        finally:
            reader.close()


def expected_outputs(env: dict[str, str], sent: list[Sent], topics: dict[str, str]) -> dict[Any, tuple]:
    """Output identity -> (logical topic, key, value without wall-clock fields), by the pure code."""
    processor = Processor(load(env), DictState(), DictState())
    expected: dict[Any, tuple] = {}
    for s in sent:
        processed = processor.process(topics[s.logical], s.partition, s.offset, s.key, s.value)
        for item in processor.with_households(processed):  # the household side as well
            value = json.loads(encode(item.value))
            ident = identity(item.topic, value)
            assert ident not in expected or expected[ident] == (item.topic, item.key, _plain(value)), ident
            expected[ident] = (item.topic, item.key, _plain(value))
    return expected


def _plain(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k not in ("emitted_at", "received_at")}


def identity(logical: str, value: dict[str, Any]) -> Any:
    if logical == "DEADLETTER":
        return ("dead letter", value["topic"], value["partition"], value["offset"])
    for name in ("warning_id", "resume_id", "stop_id"):  # a resume also names its stop
        if name in value:
            return value[name]
    raise AssertionError(f"an output without an id: {value}")


def read_outputs(address: str, topics: dict[str, str], timeout: float = 60) -> dict[Any, list[tuple]]:
    """Every record on the output topics, to the fetch high watermark, by output identity."""
    reader = KafkaConsumer(bootstrap_servers=[address], enable_auto_commit=False)
    by_name = {topics[logical]: logical for logical in OUTPUTS}
    parts = [
        TopicPartition(topics[lg], p) for lg in OUTPUTS for p in reader.partitions_for_topic(topics[lg]) or ()
    ]
    reader.assign(parts)
    reader.seek_to_beginning(*parts)
    got: dict[Any, list[tuple]] = defaultdict(list)

    def caught_up() -> bool:
        for records in reader.poll(timeout_ms=200, max_records=5000).values():
            for msg in records:
                logical = by_name[msg.topic]
                value = json.loads(msg.value)
                got[identity(logical, value)].append((logical, msg.key, _plain(value)))
        return all(
            reader.highwater(tp) is not None and reader.position(tp) >= reader.highwater(tp) for tp in parts
        )

    try:
        wait_until(caught_up, timeout, "every output record read", interval=0)
    finally:
        reader.close()
    return got


def compare(expected: dict[Any, tuple], got: dict[Any, list[tuple]]) -> Counter:
    """Assert every expected output arrived, nothing else did, and every copy is identical."""
    missing = [k for k in expected if k not in got]
    extra = [k for k in got if k not in expected]
    differing = [k for k, copies in got.items() if k in expected and any(c != expected[k] for c in copies)]
    details = []
    for k in missing[:5]:
        details.append(f"missing {k}: {expected[k]}")
    for k in extra[:5]:
        details.append(f"unexpected {k}: {got[k][0]}")
    for k in differing[:5]:
        details.append(f"differs {k}: expected {expected[k]}, got {got[k]}")
    assert not (missing or extra or differing), (
        f"{len(missing)} missing, {len(extra)} unexpected, {len(differing)} with another content "
        f"(of {len(expected)} expected)\n" + "\n".join(details)
    )
    return Counter(len(copies) for copies in got.values())
