"""The commands as a person runs them: exit codes and what they print."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from stream_app import broker
from tests.integration.conftest import free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def stream_app(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_APP_")}
    return subprocess.run(
        [sys.executable, "-m", "stream_app", *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_broker_refuses_a_taken_port_with_one_line(broker_address):
    port = broker_address.rsplit(":", 1)[1]
    result = stream_app("broker", "--port", port, timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "already in use" in result.stderr


def test_broker_stops_cleanly_on_sigterm():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream_app", "broker", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(lambda: broker.port_open("127.0.0.1", port), 30, "the broker to listen")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert not broker.port_open("127.0.0.1", port)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_bad_setting_exits_2_naming_the_variable():
    result = stream_app("worker", env={"STREAM_APP_MEDICAL_TIERS": "lots"}, timeout=30)
    assert result.returncode == 2
    assert "STREAM_APP_MEDICAL_TIERS" in result.stderr


def test_demo_runs_the_seed_stories_end_to_end():
    port = free_port()
    result = stream_app(
        "demo",
        env={"STREAM_APP_BROKER": f"kafka://127.0.0.1:{port}", "STREAM_APP_WEB_PORT": str(free_port())},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "starting the local broker" in out
    for shown in (
        "MEDICAL_SELF_PAY",
        "tier 30000.00",
        "tier 50000.00",
        "DEATH",
        "DISABILITY_REVOKED",
        "DISABILITY_NURSING_ELIGIBLE",
        "DEATH_WITHDRAWN",
        "DEAD LETTER",
        "POST_DEATH_ACTIVITY",
        "paid after death: 4 months, 4800.00 to recover",  # the 特困 death registered late (R9)
    ):
        assert shown in out, shown
    assert "expected outputs arrived" in out
