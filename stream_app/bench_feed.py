"""The records ``stream-app bench`` sends: a seeded, realistic mix of the four input feeds.

Pure (no broker, no clock): the same seed gives the same records. Most records are
settlements (85%); the rest are enrollments (8%), disability records (5%) and death
registrations (2%). A few persons in 25 have large bills, so their rolling self-pay
crosses the tiers; some settlements are reversed or redelivered; deaths mostly hit
enrolled persons, so warnings and stops exist as in a real feed.

For the latency figures, ``probe`` records each cause exactly one output the bench can
match by ``caused_by``: a settlement of 35,000 yuan for a person with no history (one
``MEDICAL_SELF_PAY`` warning), or the death of a person kept apart for it with an active
``dibao`` since 2020 (one ``DEATH`` stop).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec

from stream_app.records import with_check_character

#: Logical input topic and its share of the normal mix.
MIX: tuple[tuple[str, float], ...] = (
    ("MEDICAL_SETTLEMENTS", 0.85),
    ("SUBSIDY_ENROLLMENTS", 0.08),
    ("DISABILITY_REGISTRATIONS", 0.05),
    ("DEATH_REGISTRATIONS", 0.02),
)
PROGRAMS: tuple[tuple[str, float, int], ...] = (  # name, share, monthly amount in yuan
    ("dibao", 0.40, 900),
    ("tekun", 0.10, 1200),
    ("disability_living", 0.20, 150),
    ("disability_nursing", 0.15, 200),
    ("elderly_care", 0.15, 300),
)
REGIONS = ("330183004", "330183005", "330183101", "330183102", "330183103")
CST = timezone(timedelta(hours=8))
START = datetime(2025, 1, 1, 8, 0, tzinfo=CST)
#: Event time advances this much per record: 100,000 records span about a year.
STEP = timedelta(minutes=5)
#: Self-pay of a probe settlement: above the first default tier on its own.
PROBE_SELF_PAY = "35000.00"


@dataclass(frozen=True, slots=True)
class Record:
    logical: str  # logical input topic, e.g. MEDICAL_SETTLEMENTS
    key: bytes
    value: bytes
    #: For a probe: the event_id its output names in ``caused_by``.
    probe: str | None = None


def person_id(n: int) -> str:
    """A valid 18-character identity number, different for each n < 10**8."""
    return with_check_character(f"330183195{n:08d}")


def pick(r: float, shares: Iterable[tuple[str, float]]) -> str:
    """The name whose share covers ``r`` in [0, 1) (shares summing to 1, in order)."""
    name = ""
    for name, share in shares:
        if r < share:
            return name
        r -= share
    return name  # float rounding at the top end


def _money(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


@dataclass
class FeedMaker:
    """Makes records one at a time; keeps what a later record needs (earlier bills, deaths)."""

    persons: int
    seed: int = 1
    #: Persons kept apart (no normal records) whose deaths are latency probes.
    death_probes: int = 0
    rng: random.Random = field(init=False)
    n: int = field(default=0, init=False)
    _bills: dict[int, list[bytes]] = field(default_factory=dict, init=False)
    _enrolled: dict[int, set[str]] = field(default_factory=dict, init=False)
    _enrolled_list: list[int] = field(default_factory=list, init=False)
    _deaths: dict[int, str] = field(default_factory=dict, init=False)
    _death_probes_sent: int = field(default=0, init=False)
    _bill_probes_sent: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.persons < 1 or not 0 <= self.death_probes < self.persons:
            raise ValueError("need at least one person outside the death probes")
        self.rng = random.Random(self.seed)

    # -- helpers ---------------------------------------------------------------

    @property
    def ordinary(self) -> int:
        """Persons 0..ordinary-1 get the normal mix; the rest are death probes."""
        return self.persons - self.death_probes

    def _now(self) -> datetime:
        return START + STEP * self.n

    def _base(self, who: int, prefix: str) -> dict[str, Any]:
        self.n += 1
        return {
            "event_id": f"{prefix}-{self.seed}-{self.n}",
            "person_id": person_id(who),
            "region_code": REGIONS[who % len(REGIONS)],
        }

    def _record(self, logical: str, value: dict[str, Any], probe: bool = False) -> Record:
        return Record(
            logical,
            value["person_id"].encode(),
            msgspec.json.encode(value),
            value["event_id"] if probe else None,
        )

    # -- the normal mix ---------------------------------------------------------

    def setup(self) -> list[Record]:
        """One active dibao enrollment per death-probe person (sent before the worker starts)."""
        out = []
        for who in range(self.ordinary, self.persons):
            value = self._base(who, "en")
            value.update(program="dibao", status="active", monthly_amount="900.00", effective_on="2020-01-01")
            out.append(self._record("SUBSIDY_ENROLLMENTS", value))
        return out

    def normal(self) -> Record:
        logical = pick(self.rng.random(), MIX)
        return {
            "MEDICAL_SETTLEMENTS": self._settlement,
            "SUBSIDY_ENROLLMENTS": self._enrollment,
            "DISABILITY_REGISTRATIONS": self._disability,
            "DEATH_REGISTRATIONS": self._death,
        }[logical]()

    def _settlement(self) -> Record:
        rng = self.rng
        who = rng.randrange(self.ordinary)
        if who in self._deaths and rng.random() < 0.95:  # the dead rarely get bills (R4 catches the rest)
            who = rng.randrange(self.ordinary)
        bills = self._bills.setdefault(who, [])
        r = rng.random()
        if bills and r < 0.005:  # redelivered by the source: the same value again
            self.n += 1
            value = msgspec.json.decode(rng.choice(bills))
            return self._record("MEDICAL_SETTLEMENTS", value)
        value = self._base(who, "ms")
        at = self._now()
        value["settled_at"] = at.isoformat()
        if bills and r < 0.015:  # a reversal of one of the person's bills
            value.update(kind="reversal", reverses=msgspec.json.decode(rng.choice(bills))["event_id"])
            return self._record("MEDICAL_SETTLEMENTS", value)
        heavy = who % 25 == 0  # serious illness: bills that cross the tiers within a few months
        self_pay = rng.randrange(300_000, 1_500_000) if heavy else rng.randrange(1_000, 150_000)
        value.update(
            service_on=(at - timedelta(days=rng.randrange(4))).date().isoformat(),
            total_cost=_money(self_pay * rng.randrange(12, 40) // 10),
            self_pay=_money(self_pay),
        )
        if who % 2 == 0:
            value["household_id"] = f"hh-{who // 6}"
        record = self._record("MEDICAL_SETTLEMENTS", value)
        bills.append(record.value)
        if len(bills) > 8:
            bills.pop(0)
        return record

    def _enrollment(self) -> Record:
        rng = self.rng
        who = rng.randrange(self.ordinary)
        program = pick(rng.random(), [(name, share) for name, share, _ in PROGRAMS])
        amount = next(yuan for name, _, yuan in PROGRAMS if name == program)
        value = self._base(who, "en")
        enrolled = self._enrolled.setdefault(who, set())
        ending = program in enrolled and rng.random() < 0.3
        on = self._now().date() - timedelta(days=rng.randrange(400))
        value.update(
            program=program,
            status="ended" if ending else "active",
            monthly_amount=f"{amount}.00",
            effective_on=on.isoformat(),
        )
        if ending:
            enrolled.discard(program)
        else:
            if not enrolled:
                self._enrolled_list.append(who)
            enrolled.add(program)
        return self._record("SUBSIDY_ENROLLMENTS", value)

    def _disability(self) -> Record:
        rng = self.rng
        who = rng.randrange(self.ordinary)
        value = self._base(who, "dr")
        r = rng.random()
        status = "certified" if r < 0.7 else "revoked" if r < 0.9 else "expired"
        on = self._now().date() - timedelta(days=rng.randrange(60))
        value.update(status=status, effective_on=on.isoformat())
        if status == "certified":
            value.update(level=rng.randint(1, 4), category="physical")
        return self._record("DISABILITY_REGISTRATIONS", value)

    def _death(self) -> Record:
        rng = self.rng
        if self._deaths and rng.random() < 0.05:  # a wrong death withdrawn
            who = rng.choice(list(self._deaths))
            value = self._base(who, "dw")
            value.update(
                registered_at=self._now().isoformat(), status="withdrawn", withdraws=self._deaths.pop(who)
            )
            return self._record("DEATH_REGISTRATIONS", value)
        if self._enrolled_list and rng.random() < 0.8:
            who = rng.choice(self._enrolled_list)
        else:
            who = rng.randrange(self.ordinary)
        value = self._base(who, "dd")
        now = self._now()
        value.update(
            died_on=(now.date() - timedelta(days=rng.randrange(200))).isoformat(),
            registered_at=now.isoformat(),
        )
        self._deaths.setdefault(who, value["event_id"])
        return self._record("DEATH_REGISTRATIONS", value)

    # -- probes ------------------------------------------------------------------

    def probe(self) -> Record:
        """A record that causes exactly one output; one in four a death while death probes last."""
        sent = self._death_probes_sent + self._bill_probes_sent
        if self._death_probes_sent < self.death_probes and sent % 4 == 0:
            who = self.ordinary + self._death_probes_sent
            self._death_probes_sent += 1
            value = self._base(who, "dp")
            now = self._now()
            value.update(died_on=(now.date() - timedelta(days=3)).isoformat(), registered_at=now.isoformat())
            return self._record("DEATH_REGISTRATIONS", value, probe=True)
        who = self.persons + self._bill_probes_sent  # a person with no history
        self._bill_probes_sent += 1
        value = self._base(who, "mp")
        at = self._now()
        value.update(settled_at=at.isoformat(), total_cost=PROBE_SELF_PAY, self_pay=PROBE_SELF_PAY)
        return self._record("MEDICAL_SETTLEMENTS", value, probe=True)


def throughput_feed(maker: FeedMaker, events: int) -> list[Record]:
    """Exactly ``events`` records: the death probes' enrollments, then the normal mix."""
    records = maker.setup()[:events]
    records += [maker.normal() for _ in range(events - len(records))]
    return records


def latency_feed(maker: FeedMaker, count: int, probe_every: int = 20) -> list[Record]:
    """``count`` records of the normal mix with a probe as every ``probe_every``-th."""
    return [maker.probe() if (i + 1) % probe_every == 0 else maker.normal() for i in range(count)]
