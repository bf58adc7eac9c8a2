"""Bad input at volume: fuzzed records, each with the dead-letter class the contract gives it.

Each bad record is a good record of the feed broken in one way whose class is certain
(checks run in the order too_large, encoding, json, schema, key). Some good records are
made awkward but stay valid (a long unknown field, JSON nested deep inside an unknown
field): they must be processed like the rest.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable

from stream_app.processing import INPUT_TYPES
from stream_app.records import Rejected, decode, with_check_character
from tests.integration.crash import Feed, Record


def unique_person(n: int) -> str:
    """Identity numbers that do not repeat for n below 10**11 (``person`` repeats after 10,000)."""
    return with_check_character(f"330183{n:011d}")


def _text(rng: random.Random, size: int) -> str:
    return "".join(rng.choice("abcdefghij林小花王于侠 ") for _ in range(size))


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _with(raw: bytes, **fields: object) -> bytes:
    value = json.loads(raw)
    value.update(fields)
    return json.dumps(value, ensure_ascii=False).encode()


def _without(raw: bytes, field: str) -> bytes:
    value = json.loads(raw)
    value.pop(field, None)
    return json.dumps(value, ensure_ascii=False).encode()


def _wrong_check(person_id: str) -> str:
    return person_id[:17] + ("0" if person_id[17] != "0" else "1")


# How to break a good record (topic, key, value) -> (key, value), by the class it must get.
Breaker = Callable[[random.Random, bytes | None, bytes, int], tuple[bytes | None, bytes | None]]
BREAKERS: dict[str, list[Breaker]] = {
    "encoding": [
        lambda rng, key, raw, limit: (key, raw.replace(b'"event_id": "', b'"event_id": "\xff', 1)),
        lambda rng, key, raw, limit: (key, b"\xc3\x28" + rng.randbytes(rng.randrange(0, 200))),
        lambda rng, key, raw, limit: (key, raw[:-1] + b"\xed\xa0\x80}"),  # a UTF-16 surrogate
    ],
    "json": [
        lambda rng, key, raw, limit: (key, raw[: rng.randrange(1, len(raw) - 1)]),  # cut short
        lambda rng, key, raw, limit: (key, rng.choice([b"null", b"42", b'"text"', b"[]", b"true", b""])),
        lambda rng, key, raw, limit: (key, json.dumps([json.loads(raw)]).encode()),
        lambda rng, key, raw, limit: (key, None),  # a tombstone
        lambda rng, key, raw, limit: (key, _nested(rng.randrange(1000, limit // 2 - 10)).encode()),
        lambda rng, key, raw, limit: (
            key,
            raw[:-1]
            + b', "deep": '
            + _nested(rng.randrange(1000, (limit - len(raw)) // 2 - 20)).encode()
            + b"}",
        ),
    ],
    "schema": [
        lambda rng, key, raw, limit: (key, _with(raw, event_id=rng.choice([123, None, [], {}, True]))),
        lambda rng, key, raw, limit: (key, _with(raw, event_id="x" * rng.randrange(129, limit // 2))),
        lambda rng, key, raw, limit: (key, _with(raw, region_code=_text(rng, rng.randrange(10, limit // 4)))),
        lambda rng, key, raw, limit: (
            key,
            _without(raw, rng.choice(["event_id", "person_id", "region_code"])),
        ),
        lambda rng, key, raw, limit: (key, _with(raw, person_id=_wrong_check(json.loads(raw)["person_id"]))),
        lambda rng, key, raw, limit: (key, _with(raw, person_id=rng.choice([12, 3.5, "", "33018319"]))),
    ],
    "key": [
        lambda rng, key, raw, limit: (None, raw),
        lambda rng, key, raw, limit: (b"", raw),
        lambda rng, key, raw, limit: (b"\xff\xfe", raw),
        lambda rng, key, raw, limit: (unique_person(rng.randrange(10**9)).encode(), raw),
    ],
    "too_large": [
        lambda rng, key, raw, limit: (key, _with(raw, note="x" * (limit + rng.randrange(1, 4000)))),
        lambda rng, key, raw, limit: (key, rng.randbytes(limit + 1)),  # too large before anything else
    ],
}


def awkward_but_valid(rng: random.Random, raw: bytes, limit: int) -> bytes:
    """Still a good record: unknown fields are ignored (a long text, JSON nested up to 500 deep)."""
    if rng.random() < 0.5:
        return _with(raw, note=_text(rng, rng.randrange(100, limit // 8)))
    return raw[:-1] + b', "extra": ' + _nested(rng.randrange(10, 500)).encode() + b"}"


def _decode(record: Record, limit: int) -> object:
    logical, key, raw = record
    return decode(INPUT_TYPES[logical], key, raw, limit)


def fuzz(
    feed: Feed, rng: random.Random, bad_share: float, limit: int
) -> tuple[list[Record], list[Record], list[str | None]]:
    """Both phases with bad records mixed in (``bad_share`` of the total), and per record its
    intended dead-letter class (None: good, or one of the feed's own bad records)."""
    good = feed.phase1 + feed.phase2
    # Bases to break: valid records in ASCII (so a cut or an inserted byte has a certain class).
    bases = [r for r in good if r[2].isascii() and not isinstance(_decode(r, limit), Rejected)]
    bad_count = round(len(good) * bad_share / (1 - bad_share))
    phases: list[list[tuple[Record, str | None]]] = [
        [(r, None) for r in feed.phase1],
        [(r, None) for r in feed.phase2],
    ]
    for phase in phases:
        for n, (record, _) in enumerate(phase):
            if rng.random() < 0.02 and not isinstance(_decode(record, limit), Rejected):
                phase[n] = ((record[0], record[1], awkward_but_valid(rng, record[2], limit)), None)
    for _ in range(bad_count):
        logical, key, raw = rng.choice(bases)
        error_class = rng.choice(list(BREAKERS))
        new_key, new_value = rng.choice(BREAKERS[error_class])(rng, key, raw, limit)
        phase = phases[0] if rng.random() < len(feed.phase1) / len(good) else phases[1]
        phase.insert(rng.randrange(len(phase) + 1), ((logical, new_key, new_value), error_class))  # type: ignore[arg-type]
    phase1, phase2 = ([r for r, _ in p] for p in phases)
    return phase1, phase2, [c for p in phases for _, c in p]
