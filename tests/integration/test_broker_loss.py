"""A worker started before its broker waits for it: probes answer, no crash loop, then it runs."""

from __future__ import annotations

import pytest

from stream_app import broker
from tests.builders import settlement_value
from tests.integration.conftest import Kafka, Worker, free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def test_worker_started_before_the_broker_waits_then_processes(scenario):
    port = free_port()  # nothing listens here yet
    web = free_port()
    env = {
        **scenario["env"],
        "STREAM_APP_BROKER": f"kafka://127.0.0.1:{port}",
        "STREAM_APP_DATA_DIR": str(scenario["tmp"] / "state"),
        "STREAM_APP_WEB_PORT": str(web),
        "STREAM_APP_CANONICAL_URL": f"http://127.0.0.1:{web}",
    }
    log = scenario["tmp"] / "worker.log"
    worker = Worker(env, log).start(wait_ready=False)
    try:
        wait_until(lambda: worker.get("/healthz")[0] == 200, 60, "the liveness probe to answer")
        status, body = worker.get("/readyz")
        assert (status, body["ready"]) == (503, False)
        wait_until(lambda: log.read_text().count("not reachable yet") >= 3, 60, "three retry log lines")
        assert worker.proc is not None and worker.proc.poll() is None, "the worker must wait, not exit"

        proc = broker.start("127.0.0.1", port, quiet=True)
        try:
            worker.wait_ready(120)
            kafka = Kafka(f"127.0.0.1:{port}", scenario["topics"])
            try:
                who = "330183199001010037"
                kafka.send(
                    "MEDICAL_SETTLEMENTS",
                    settlement_value("late-b1", who, "2020-01-02T09:00:00+08:00", "31000"),
                )
                [warning] = kafka.wait_for("ASSISTANCE_WARNINGS", 1)
                assert (warning["caused_by"], warning["tier"]) == ("late-b1", "30000.00")
            finally:
                kafka.close()
        finally:
            assert worker.stop() == 0, worker.log_tail()
            broker.stop(proc)
    finally:
        if worker.proc is not None and worker.proc.poll() is None:
            worker.proc.kill()


def test_broker_gone_mid_run_makes_the_worker_not_ready_and_it_comes_back_by_itself(scenario):
    port, web = free_port(), free_port()
    env = {
        **scenario["env"],
        "STREAM_APP_BROKER": f"kafka://127.0.0.1:{port}",
        "STREAM_APP_DATA_DIR": str(scenario["tmp"] / "state"),
        "STREAM_APP_WEB_PORT": str(web),
        "STREAM_APP_CANONICAL_URL": f"http://127.0.0.1:{web}",
    }
    proc = broker.start("127.0.0.1", port, quiet=True)
    worker = Worker(env, scenario["tmp"] / "worker.log").start()
    try:
        broker.stop(proc)
        wait_until(lambda: worker.get("/readyz")[0] == 503, 60, "/readyz to say 503 without a broker")
        assert worker.get("/healthz")[0] == 200 and worker.proc.poll() is None  # alive, not restarted
        # The local broker keeps nothing across a restart (docs/guarantees.md); it comes back empty.
        proc = broker.start("127.0.0.1", port, quiet=True)
        worker.wait_ready(120)
        assert worker.proc.poll() is None
    finally:
        assert worker.stop() == 0, worker.log_tail()
        broker.stop(proc)
