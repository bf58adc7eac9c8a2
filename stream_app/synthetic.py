"""A realistic synthetic input feed in kcat ``-J`` form, for measuring and testing the backtest.

Mostly medical settlements (many small bills, a few large hospital stays, some
reversals, some redeliveries), about a fifth status records (enrollments, disability
records, deaths and a few withdrawals), a sprinkling of bad records, over tens of
thousands of persons and about two years. Seeded: the same arguments give the same
lines, byte for byte.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from stream_app.records import with_check_character
from stream_app.settings import DEFAULT_TOPICS

REGIONS = tuple(f"330183{n:03d}" for n in (1, 2, 3, 4, 5, 101, 102, 103, 104, 105, 106, 107))
PROGRAMS = ("dibao", "tekun", "disability_living", "disability_nursing")
START = datetime(2019, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=730)
CST_TEXT = "+08:00"


def _person(n: int) -> str:
    return with_check_character(f"3301{n % 100:02d}{19300101 + (n * 7919) % 700000:08d}{n % 1000:03d}")


def _money(rng: random.Random, low: float, high: float) -> Any:
    fen = int(rng.uniform(low, high) * 100)
    text = f"{fen // 100}.{fen % 100:02d}"
    # Most departments send strings; some send JSON numbers.
    return text if rng.random() < 0.8 else (fen // 100 if fen % 100 == 0 else float(text))


def _at(moment: datetime) -> str:
    return (moment + timedelta(hours=8)).strftime("%Y-%m-%dT%H:%M:%S") + CST_TEXT


def records(
    count: int, persons: int = 30_000, seed: int = 1, heavy_share: float = 0.3
) -> Iterator[dict[str, Any]]:
    """``count`` kcat -J records (dicts with a string ``payload``) in arrival (``ts``) order;
    ``heavy_share`` of them go to the 2% of persons who are heavy users (0: none)."""
    rng = random.Random(seed)
    people = [
        (_person(n), rng.choice(REGIONS), f"HH-{n // 3:06d}" if rng.random() < 0.5 else None)
        for n in range(persons)
    ]
    # A few persons are heavy users (chronic illness): they get most of the large bills.
    heavy = max(1, persons // 50)
    offsets: dict[tuple[str, int], int] = {}
    dead: set[int] = set()
    recent: list[tuple[str, str, str]] = []  # (event_id, person_id, payload) for reversals and redeliveries
    step = SPAN / max(count, 1)
    for i in range(count):
        moment = START + step * i + timedelta(seconds=rng.randrange(60))
        roll = rng.random()
        who = rng.randrange(heavy) if rng.random() < heavy_share else rng.randrange(persons)
        while roll < 0.80 and who in dead:  # the dead have no more bills (mostly: see died_on)
            who = rng.randrange(persons)
        person_id, region, household = people[who]
        payload: str | None
        if roll < 0.80:
            topic = "MEDICAL_SETTLEMENTS"
            sub = rng.random()
            if sub < 0.02 and recent:  # a reversal of a recent settlement
                event_id, person_id, _ = rng.choice(recent)
                value: dict[str, Any] = {
                    "event_id": f"YB-R-{i}",
                    "person_id": person_id,
                    "region_code": region,
                    "settled_at": _at(moment),
                    "kind": "reversal",
                    "reverses": event_id,
                }
                payload = json.dumps(value, ensure_ascii=False)
            elif sub < 0.03 and recent:  # a redelivery
                _, person_id, payload = rng.choice(recent)
            else:
                big = who < heavy and rng.random() < 0.4
                self_pay = _money(rng, 3000, 30000) if big else _money(rng, 5, 1500)
                value = {
                    "event_id": f"YB-{i}",
                    "person_id": person_id,
                    "region_code": region,
                    "settled_at": _at(moment),
                    "service_on": (moment - timedelta(days=rng.randrange(3))).date().isoformat(),
                    "total_cost": _money(rng, 50, 60000) if big else _money(rng, 10, 3000),
                    "self_pay": self_pay,
                    "kind": "settlement",
                }
                if household:
                    value["household_id"] = household
                payload = json.dumps(value, ensure_ascii=False)
                recent.append((value["event_id"], person_id, payload))
                if len(recent) > 2000:
                    recent.pop(rng.randrange(len(recent)))
        else:
            base = {"event_id": f"ST-{i}", "person_id": person_id, "region_code": region}
            sub = rng.random()
            if sub < 0.65:
                topic = "SUBSIDY_ENROLLMENTS"
                value = {
                    **base,
                    "program": rng.choice(PROGRAMS),
                    "status": "active" if rng.random() < 0.75 else "ended",
                    "monthly_amount": _money(rng, 100, 2000),
                    "effective_on": (moment - timedelta(days=rng.randrange(400))).date().isoformat(),
                }
            elif sub < 0.93:
                topic = "DISABILITY_REGISTRATIONS"
                status = rng.choice(("certified", "certified", "certified", "revoked", "expired"))
                value = {**base, "status": status, "effective_on": moment.date().isoformat()}
                if status == "certified":
                    value["level"] = rng.randint(1, 4)
            else:
                topic = "DEATH_REGISTRATIONS"
                if rng.random() < 0.1:
                    value = {
                        **base,
                        "registered_at": _at(moment),
                        "status": "withdrawn",
                        "withdraws": f"ST-{rng.randrange(max(i, 1))}",
                    }
                else:
                    dead.add(who)
                    died = moment - timedelta(days=rng.randrange(200))
                    value = {**base, "registered_at": _at(moment), "died_on": died.date().isoformat()}
            payload = json.dumps(value, ensure_ascii=False)
        key: str | None = person_id
        if rng.random() < 0.001:  # bad input: a wrong check character, or not JSON at all
            payload = payload.replace(person_id, person_id[:17] + ("0" if person_id[17] != "0" else "1"))
        elif rng.random() < 0.0005:
            payload = payload[: len(payload) // 2]
        name = DEFAULT_TOPICS[topic]
        partition = int(person_id[10:17]) % 4
        offset = offsets.get((name, partition), 0)
        offsets[(name, partition)] = offset + 1
        yield {
            "topic": name,
            "partition": partition,
            "offset": offset,
            "tstype": "create",
            "ts": int(moment.timestamp() * 1000),
            "broker": 1,
            "key": key,
            "payload": payload,
        }


def write(path: str, count: int, persons: int = 30_000, seed: int = 1, heavy_share: float = 0.3) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for record in records(count, persons, seed, heavy_share):
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
