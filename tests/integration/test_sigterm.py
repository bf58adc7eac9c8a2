"""SIGTERM in the middle of a backlog: the worker stops well within the grace period, nothing lost."""

from __future__ import annotations

import random
import signal
import time

import pytest

from tests.integration.crash import Harness, compare, expected_outputs, generate, read_outputs

pytestmark = pytest.mark.integration

#: terminationGracePeriodSeconds of the StatefulSet (k8s/base/statefulset.yaml).
GRACE_PERIOD_S = 60


def test_sigterm_mid_backlog_stops_within_the_grace_period_and_loses_nothing(scenario, make_worker, kafka):
    feed = generate(7, people=40)
    harness = Harness(make_worker, kafka, scenario["env"], random.Random(7))
    harness.produce(feed.phase1)
    harness.wait_committed_to_end()
    before = harness.consumed() or 0
    harness.produce(feed.phase2)
    # Stop while the worker is busy with the backlog, not after it.
    deadline = time.monotonic() + 60
    while (harness.consumed() or 0) < before + len(feed.phase2) // 4 and time.monotonic() < deadline:
        pass
    started = time.monotonic()
    assert harness.worker.stop(signal.SIGTERM, timeout=GRACE_PERIOD_S) == 0, harness.worker.log_tail()
    took = time.monotonic() - started
    print(f"\nSIGTERM to exit: {took:.2f}s with a backlog of ~{len(feed.phase2) * 3 // 4} records")
    assert took < GRACE_PERIOD_S

    harness.worker = make_worker(harness.data_dir).start()
    harness.wait_committed_to_end()
    expected = expected_outputs(scenario["env"], harness.sent, scenario["topics"])
    compare(expected, read_outputs(scenario["address"], scenario["topics"]))
