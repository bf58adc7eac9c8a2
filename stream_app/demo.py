"""``stream-app demo``: broker, worker and the seed stories, outputs printed as they arrive.

What the worker should emit is computed first by the same rule code over the same
records (the processor on in-memory state); the demo then sends each record through
the real topics, waits for exactly those outputs, and says whether all arrived.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from rich.console import Console
from rich.markup import escape

from stream_app import broker, harness
from stream_app.demo_feed import stories
from stream_app.processing import DictState, Processor
from stream_app.records import encode
from stream_app.security import kafka_python_config
from stream_app.settings import Settings
from stream_app.tools import producer, seek_to_fetch_highwater
from stream_app.topology import OUTPUT_TOPICS

ID_FIELDS = ("warning_id", "resume_id", "stop_id")  # a resume also names its stop_id


def output_identity(topic: str, payload: dict[str, Any]) -> str:
    for name in ID_FIELDS:
        if name in payload:
            return payload[name]
    return f"{payload.get('topic')}[{payload.get('partition')}]@{payload.get('offset')}"


def describe(payload: dict[str, Any]) -> str:
    if "warning_id" in payload:
        extra = {
            "MEDICAL_SELF_PAY": lambda p: (
                f"tier {p['tier']}: rolling self-pay {p['rolling_self_pay']} "
                f"({p['window_start']}..{p['window_end']}), suggested {p['suggested_amount']}"
            ),
            "DISABILITY_NURSING_ELIGIBLE": lambda p: f"level {p['level']}, no nursing subsidy",
            "DUPLICATE_ASSISTANCE": lambda p: f"programs {' + '.join(p['programs'])}",
            "POST_DEATH_ACTIVITY": lambda p: (
                f"care on {p['service_on']} after the death on {p['died_on']}, self-pay {p['self_pay']}"
            ),
        }.get(payload["rule"], lambda p: "")(payload)
        return f"[bold yellow]WARNING[/] {payload['rule']} region {payload['region_code']}: {extra}"
    if "resume_id" in payload:
        return (
            f"[bold green]RESUME[/] {payload['program']} from {payload['effective_on']} ({payload['reason']})"
        )
    if "stop_id" in payload:
        stop = f"[bold red]STOP[/] {payload['program']} from {payload['effective_on']} ({payload['reason']})"
        if "overpaid_months" in payload:
            months, amount = payload["overpaid_months"], payload["overpaid_amount"]
            stop += f"; paid after death: {months} month{'' if months == 1 else 's'}, {amount} to recover"
        return stop
    return f"[bold magenta]DEAD LETTER[/] {payload['error_class']}: {escape(payload['error'])}"


@dataclass
class Watcher:
    consumer: KafkaConsumer
    console: Console
    seen: dict[str, dict[str, Any]] = field(default_factory=dict)
    arrivals: Counter[str] = field(default_factory=Counter)

    def poll(self, timeout_ms: int = 200) -> None:
        for records in self.consumer.poll(timeout_ms=timeout_ms).values():
            for msg in records:
                payload = json.loads(msg.value)
                ident = output_identity(msg.topic, payload)
                self.console.print(f"  -> {describe(payload)}", soft_wrap=True)
                self.console.print(
                    f"     [dim]{msg.topic} {json.dumps(payload, ensure_ascii=False)}[/]", soft_wrap=True
                )
                self.seen[ident] = payload
                self.arrivals[ident] += 1

    def wait_for(self, idents: set[str], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not idents <= self.seen.keys():
            if time.monotonic() > deadline:
                return False
            self.poll()
        return True


def run(settings: Settings, keep_data: bool = False) -> int:
    console = Console(highlight=False)
    host, port = settings.bootstrap_servers[0].rsplit(":", 1)
    local = None
    if broker.port_open(host, int(port)):
        console.print(f"using the broker already listening on {host}:{port}")
    else:
        console.print(f"starting the local broker (tansu, memory only) on {host}:{port}")
        local = harness.start_broker(host, int(port))
    data_dir = tempfile.mkdtemp(prefix="stream-app-demo-")
    log_path = os.path.join(data_dir, "worker.log")
    env = {
        **os.environ,
        "STREAM_APP_DATA_DIR": os.path.join(data_dir, "state"),
        "STREAM_APP_WEB_PORT": str(settings.web_port),
    }
    worker = harness.Worker(env, Path(log_path))
    try:
        harness.ensure_topics(settings)
        names = [settings.topic(t) for t in OUTPUT_TOPICS]
        consumer = KafkaConsumer(enable_auto_commit=False, **kafka_python_config(settings))
        parts = [TopicPartition(n, p) for n in names for p in sorted(consumer.partitions_for_topic(n) or ())]
        consumer.assign(parts)
        seek_to_fetch_highwater(consumer, parts)  # fix the start now: only outputs of this run are shown
        watcher = Watcher(consumer, console)

        console.print(f"starting the worker (log: {log_path})")
        try:
            worker.start(timeout_s=180)
        except harness.HarnessError:
            console.print(f"[red]the worker did not become ready; see {log_path}[/]")
            return 1
        console.print("worker ready\n")
        return _feed(settings, watcher, worker, console)
    finally:
        worker.terminate()
        if local is not None:
            local.stop()
        if not keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)


def _feed(settings: Settings, watcher: Watcher, worker: harness.Worker, console: Console) -> int:
    expected_proc = Processor(settings, DictState(), DictState())
    client = producer(settings)
    missing: list[str] = []
    expected_all: set[str] = set()
    for title, records in stories():
        console.rule(title)
        for logical, value in records:
            topic = settings.topic(logical)
            raw = value if isinstance(value, bytes) else json.dumps(value, ensure_ascii=False).encode()
            key = (value.get("person_id") if isinstance(value, dict) else None) or stories_key(records)
            meta = client.send(topic, key=key.encode(), value=raw).get(timeout=30)
            expected = expected_proc.process(topic, meta.partition, meta.offset, key.encode(), raw)
            emits = expected_proc.with_households(expected)  # R7's household side included
            idents = {output_identity(e.topic, json.loads(encode(e.value))) for e in emits}
            label = value.get("event_id") if isinstance(value, dict) else "(unparseable)"
            console.print(f"sent {label} to {topic}")
            if not idents and isinstance(value, dict) and logical == "SUBSIDY_ENROLLMENTS":
                # Wait until the roll is in the worker's state, so that later records of
                # other feeds meet it there (records of different topics are not ordered).
                # At most 30 s: if it never is, the outputs below say what went wrong.
                with contextlib.suppress(harness.HarnessError):
                    harness.wait_until(functools.partial(_enrolled, worker, value), 30, "the enrollment", 0.2)
            household = value.get("household_id") if isinstance(value, dict) else None
            if not idents and household and expected.emits:
                # A member's bill that makes no output yet: wait until the household holds it,
                # so that the next member's bill (another partition) comes after it there.
                with contextlib.suppress(harness.HarnessError):
                    counted = functools.partial(_in_household, worker, household, value["event_id"])
                    harness.wait_until(counted, 30, "the household's bill", 0.2)
            if not watcher.wait_for(idents, 60):
                missing.extend(sorted(idents - watcher.seen.keys()))
            expected_all |= idents
    watcher.poll(500)
    client.close()
    console.rule()
    extra = sorted(set(watcher.seen) - expected_all)
    repeated = sorted(i for i, n in watcher.arrivals.items() if n > 1)
    if missing or extra or repeated:
        console.print(
            f"[red]of {len(expected_all)} expected outputs, missing: {missing}; "
            f"unexpected: {extra}; arrived more than once: {repeated}[/]"
        )
        return 1
    console.print(
        f"[green]all {len(expected_all)} expected outputs arrived, each once, with the expected ids[/]"
    )
    return 0


def stories_key(records: list[tuple[str, Any]]) -> str:
    """Key for a record that has no parseable person_id: the story's person."""
    for _, value in records:
        if isinstance(value, dict):
            return value["person_id"]
    return ""


def _in_household(worker: harness.Worker, household_id: str, event_id: str) -> bool:
    code, body = worker.get(f"/households/{household_id}")
    if code != 200 or not body:
        return False
    return any(s["event_id"] == event_id for s in body["medical"]["settlements"])


def _enrolled(worker: harness.Worker, value: dict[str, Any]) -> bool:
    code, body = worker.get(f"/persons/{value['person_id']}")
    if code != 200 or not body or not body.get("status"):
        return False
    return any(p["enrolled_by"] == value["event_id"] for p in body["status"]["programs"])
