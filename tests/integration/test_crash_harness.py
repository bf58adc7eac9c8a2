"""Nothing lost across kill -9 and restarts: outputs exact by id and content, offsets committed to the end.

A real worker is killed at random instants (also while it rebuilds its tables) and
stopped with SIGTERM while a backlog builds up, restarted on the same data dir or an
empty one, while a multi-topic feed is produced. The CI-sized run is in the suite;
``scripts/fault-tests`` runs the long one (``--run-long``) several times.
"""

from __future__ import annotations

import os
import random

import pytest

from tests.integration.crash import FAULT_KINDS, Harness, compare, expected_outputs, generate, read_outputs

pytestmark = pytest.mark.integration


def run(
    scenario,
    make_worker,
    kafka,
    seed: int,
    people: int,
    faults: tuple[int, int],
    kinds: tuple[str, ...] | None = None,
    **worker_env: str,
) -> None:
    rng = random.Random(seed)
    feed = generate(seed, people)
    if kinds is None:
        kinds = tuple(os.environ.get("CRASH_HARNESS_FAULTS", ",".join(FAULT_KINDS)).split(","))

    def make(*args, **kwargs):
        return make_worker(*args, **worker_env, **kwargs)

    harness = Harness(make, kafka, scenario["env"], rng, kinds=kinds)
    harness.run_phase(feed.phase1, chunk=40, faults=faults[0])
    harness.wait_committed_to_end()
    harness.run_phase(feed.phase2, chunk=60, faults=faults[1])
    harness.wait_committed_to_end()

    expected = expected_outputs(scenario["env"], harness.sent, scenario["topics"])
    try:
        copies = compare(expected, read_outputs(scenario["address"], scenario["topics"]))
    except AssertionError as failed:  # the faults are what a reader needs to reproduce it
        raise AssertionError(f"seed={seed}; faults: {'; '.join(harness.faults)}\n{failed}") from None
    print(
        f"\ncrash harness seed={seed}: {len(harness.sent)} records, {len(expected)} outputs exact, "
        f"copies per output {dict(sorted(copies.items()))}; faults: {'; '.join(harness.faults)}"
    )


def test_outputs_exact_across_kills_and_restarts(scenario, make_worker, kafka):
    seed = int(os.environ.get("CRASH_HARNESS_SEED", random.randrange(1_000_000)))
    print(f"\nCRASH_HARNESS_SEED={seed}")  # to reproduce a failure
    run(scenario, make_worker, kafka, seed, people=30, faults=(1, 4))


def test_outputs_exact_across_kills_in_the_middle_of_batches(scenario, make_worker, kafka):
    """Small batches (8) under chunks of 40-60 records: when the harness strikes, after a random
    number of a chunk's records are through, the worker is inside the next batch (processing
    it, awaiting its outputs' acknowledgement, writing its state or acking it)."""
    seed = int(os.environ.get("CRASH_HARNESS_SEED", random.randrange(1_000_000)))
    print(f"\nCRASH_HARNESS_SEED={seed}")
    run(
        scenario,
        make_worker,
        kafka,
        seed,
        people=30,
        faults=(1, 4),
        kinds=("kill", "kill", "kill-in-recovery"),
        STREAM_APP_MAX_BATCH_RECORDS="8",
    )


@pytest.mark.long
def test_outputs_exact_across_many_kills_and_restarts_long(scenario, make_worker, kafka):
    seed = int(os.environ.get("CRASH_HARNESS_SEED", random.randrange(1_000_000)))
    print(f"\nCRASH_HARNESS_SEED={seed}")
    run(scenario, make_worker, kafka, seed, people=150, faults=(3, 12))
