"""Bad input at volume on the real worker: every bad record a dead letter of its class, nothing else changes.

About 10% of the records are fuzzed (invalid UTF-8, cut or non-object JSON, JSON nested too
deep, null values, wrong types, huge strings, missing fields, bad identity numbers, missing or
wrong keys, values over the size limit), mixed among the crash harness's multi-topic feed. The
worker must never go down, every bad record must be a dead letter of the class it was made
for, at its topic/partition/offset, and every output, good or dead letter, must equal by id
and content what the pure ``Processor`` gives for the same records. The CI-sized run is in the
suite; ``scripts/fault-tests`` runs the 100,000-record one (``--run-long``).
"""

from __future__ import annotations

import os
import random
import re
import time
from collections import Counter

import pytest

from tests.integration.badinput import fuzz, unique_person
from tests.integration.crash import Harness, compare, expected_outputs, generate, read_outputs
from tests.integration.outputs import consumed_total

pytestmark = pytest.mark.integration
LIMIT = 16384  # STREAM_APP_MAX_RECORD_BYTES: keeps the too-large records' volume modest


def dead_letter_metrics(text: str) -> Counter:
    counts: Counter = Counter()
    pattern = r'^benefit_integrity_dead_letters_total\{error_class="([^"]+)",topic="[^"]+"\} (\S+)$'
    for m in re.finditer(pattern, text, re.M):
        counts[m.group(1)] += int(float(m.group(2)))
    return +counts


def run(scenario, make_worker, kafka, seed: int, people: int, chunk: int, timeout: float) -> None:
    started = time.monotonic()
    scenario["env"]["STREAM_APP_MAX_RECORD_BYTES"] = str(LIMIT)
    rng = random.Random(seed)
    phase1, phase2, intended = fuzz(generate(seed, people, unique_person), rng, 0.10, LIMIT)
    harness = Harness(make_worker, kafka, scenario["env"], rng)
    pid = harness.worker.proc.pid

    for phase in (phase1, phase2):  # phase 1 (enrollments) is processed before phase 2 starts
        for i in range(0, len(phase), chunk):
            harness.produce(phase[i : i + chunk])
            assert harness.worker.proc.poll() is None, harness.worker.log_tail()
        harness.wait_committed_to_end(timeout)
    processed_s = time.monotonic() - started

    expected = expected_outputs(scenario["env"], harness.sent, scenario["topics"])
    got = read_outputs(scenario["address"], scenario["topics"], timeout=timeout)
    copies = compare(expected, got)

    # Every fuzzed record is a dead letter of the class it was made for, at its position.
    assert len(harness.sent) == len(intended)
    for sent, error_class in zip(harness.sent, intended, strict=True):
        if error_class is None:
            continue
        where = ("dead letter", scenario["topics"][sent.logical], sent.partition, sent.offset)
        assert where in got, f"no dead letter for a {error_class} record at {where}"
        assert {c[2]["error_class"] for c in got[where]} == {error_class}, (where, got[where][0])
    by_class = Counter(v[2]["error_class"] for k, v in expected.items() if k[0] == "dead letter")
    assert "internal" not in by_class

    # The worker never went down: the same process, alive and healthy, counted every record.
    worker = harness.worker
    assert worker.proc.pid == pid and worker.proc.poll() is None
    assert worker.get("/healthz")[0] == 200
    metrics = worker.metrics()
    assert consumed_total(metrics) == len(harness.sent)
    assert dead_letter_metrics(metrics) == by_class
    fuzzed = Counter(c for c in intended if c)
    print(
        f"\nbad input at volume seed={seed}: {len(harness.sent)} records, {sum(fuzzed.values())} fuzzed "
        f"({dict(sorted(fuzzed.items()))}); dead letters by class {dict(sorted(by_class.items()))}; "
        f"{len(expected)} outputs exact, copies {dict(copies)}; processed in {processed_s:.0f}s, "
        f"{time.monotonic() - started:.0f}s in all"
    )


def test_bad_input_at_volume_becomes_dead_letters_and_good_outputs_stay_exact(scenario, make_worker, kafka):
    seed = int(os.environ.get("BAD_INPUT_SEED", random.randrange(1_000_000)))
    print(f"\nBAD_INPUT_SEED={seed}")  # to reproduce a failure
    run(scenario, make_worker, kafka, seed, people=80, chunk=1000, timeout=240)


@pytest.mark.long
def test_bad_input_at_volume_100k_long(scenario, make_worker, kafka):
    seed = int(os.environ.get("BAD_INPUT_SEED", random.randrange(1_000_000)))
    print(f"\nBAD_INPUT_SEED={seed}")
    run(scenario, make_worker, kafka, seed, people=2935, chunk=5000, timeout=1200)
