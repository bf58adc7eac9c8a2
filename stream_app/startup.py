"""The worker before Faust runs: wait for the broker, answering probes meanwhile.

A worker started before its broker (a cluster coming up, a broker being replaced)
waits for it indefinitely, with a log line per attempt, instead of exiting and
crash-looping. Meanwhile its web port answers ``/healthz`` 200 (the process is fine:
liveness must not kill it) and ``/readyz`` 503 (it does not serve yet), until Faust's
own web server takes the port over.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from stream_app.settings import Settings


class _WaitingProbes(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # the standard library names it so
        body: dict[str, object]
        if self.path == "/healthz":
            status, body = 200, {"status": "ok", "waiting_for": "the Kafka broker"}
        else:
            status, body = 503, {"ready": False, "reason": "waiting for the Kafka broker"}
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # probes every few seconds: no log
        return


@contextmanager
def probes_while_waiting(settings: Settings) -> Iterator[None]:
    """Answer the probes on the web port for the duration of the block."""
    try:
        server = ThreadingHTTPServer((settings.web_host, settings.web_port), _WaitingProbes)
    except OSError:  # the port is taken: Faust will say so when it binds; do not hide it here
        yield
        return
    thread = threading.Thread(target=server.serve_forever, name="waiting-probes", daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
