"""Start the local broker and worker processes, and wait for them with deadlines.

One harness for ``stream-app demo``, ``stream-app bench`` and the integration tests: a
broker (the local tansu, on a free port or the one already listening), the topics, and
``python -m stream_app worker`` (or another module's app) as a child process with its
own environment, data dir, web port and log file, ready when ``/readyz`` says 200.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from stream_app import broker
from stream_app.admin import ensure_topics as ensure_topics  # the harness's step "topics"

T = TypeVar("T")


class HarnessError(RuntimeError):
    """A child process exited or did not get ready in time; the message ends with its log tail."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], T], timeout_s: float, what: str, interval_s: float = 0.1) -> T:
    """Return the first truthy value of ``condition()``; raise ``HarnessError`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise HarnessError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(interval_s)


@dataclass
class LocalBroker:
    host: str
    port: int
    #: None when a broker was already listening: not ours to stop.
    proc: subprocess.Popen[bytes] | None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """As ``STREAM_APP_BROKER`` takes it."""
        return f"kafka://{self.address}"

    def stop(self) -> None:
        if self.proc is not None:
            broker.stop(self.proc)


def start_broker(host: str = "127.0.0.1", port: int | None = None, reuse: bool = False) -> LocalBroker:
    """The local broker (memory only) on ``port`` (a free one if None), listening when this returns.

    ``reuse``: a broker already listening there is used as it is (and left running by ``stop``).
    """
    port = free_port(host) if port is None else port
    if reuse and broker.port_open(host, port):
        return LocalBroker(host, port, None)
    return LocalBroker(host, port, broker.start(host, port, quiet=True))


class Worker:
    """``python -m MODULE ARGS`` (``stream_app worker`` by default) with its own environment and log.

    Its web port is ``STREAM_APP_WEB_PORT`` from that environment.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        log_path: Path,
        module: str = "stream_app",
        args: Sequence[str] = ("worker",),
        name: str = "worker",
        cwd: Path | None = None,
    ) -> None:
        self.env = dict(env)
        self.log_path = Path(log_path)
        self.module = module
        self.args = tuple(args)
        self.name = name
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def web(self) -> str:
        return f"http://127.0.0.1:{self.env['STREAM_APP_WEB_PORT']}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def start(self, wait_ready: bool = True, timeout_s: float = 120) -> Worker:
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the handle
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module, *self.args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
            )
        if wait_ready:
            self.wait_ready(timeout_s)
        return self

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise HarnessError(f"the {self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")

    def wait_ready(self, timeout: float = 120) -> None:
        """Until ``/readyz`` answers 200 (partitions assigned, tables recovered)."""

        def ready() -> bool:
            self.check_alive()
            return self.get("/readyz")[0] == 200

        try:
            wait_until(ready, timeout, f"the {self.name} to be ready", interval_s=0.2)
        except HarnessError as exc:
            if "timed out" not in str(exc):
                raise
            raise HarnessError(f"{exc}\n{self.log_tail()}") from None

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """GET on the web port: (status, JSON body or text); (0, None) when nothing answers."""
        request = urllib.request.Request(self.web + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                body = resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            body, status = exc.read(), exc.code
        except (urllib.error.URLError, OSError):
            return 0, None
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode("utf-8", "replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send ``sig`` and return the exit code; a child still running after ``timeout`` is
        killed and ``HarnessError`` raised (it ignored the signal)."""
        assert self.proc is not None, "stop before start"
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise HarnessError(
                    f"the {self.name} did not stop within {timeout:.0f}s:\n{self.log_tail()}"
                ) from None
        return self.proc.returncode

    def terminate(self, timeout: float = 60) -> None:
        """Clean-up: SIGTERM, then SIGKILL after ``timeout``; never raises."""
        try:
            if self.proc is not None:
                self.stop(signal.SIGTERM, timeout)
        except HarnessError:
            pass

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def topic_env(topics: Mapping[str, str]) -> dict[str, str]:
    """``STREAM_APP_TOPIC_<logical>`` for each topic: a worker's environment for these names."""
    return {f"STREAM_APP_TOPIC_{logical}": name for logical, name in topics.items()}


def worker_env(base: Mapping[str, str], data_dir: Path | str, web_port: int, **extra: str) -> dict[str, str]:
    """A worker's environment: ``base`` plus its own data dir and web port (its canonical URL on
    127.0.0.1, so requests it forwards to itself stay local), then ``extra``."""
    return {
        **base,
        "PYTHONUNBUFFERED": "1",
        "STREAM_APP_DATA_DIR": str(data_dir),
        "STREAM_APP_WEB_PORT": str(web_port),
        "STREAM_APP_CANONICAL_URL": f"http://127.0.0.1:{web_port}",
        **extra,
    }
