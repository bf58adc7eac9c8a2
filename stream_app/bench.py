"""``stream-app bench``: how fast the real worker is, beside a raw floor and a naive Faust agent.

One run, one broker, the same records for every figure:

1. a broker: the local one, started on a free port and stopped at the end, unless
   ``STREAM_APP_BROKER`` is set in the environment (then that broker is used and must be
   reachable); topics have fresh names per run, so runs never see each other's records;
2. the feed (``stream_app/bench_feed.py``) is produced to the four input topics before any
   consumer starts, so every figure is consumer throughput, not producer speed;
3. raw floor: an aiokafka consumer reads the same records and decodes each with the
   worker's codec (``records.decode``);
4. naive: a plain Faust agent (``stream_app/bench_naive.py``, its own app id, data dir and
   RocksDB table; one table read and write per event) as a subprocess;
5. the real ``stream-app worker`` as a subprocess, every rule, table and changelog; its
   ``/metrics`` are polled (no sleeps standing in for readiness); then its table values are
   read from the changelogs for the bytes per person;
6. latency: a paced producer offers the normal mix at half the worker's measured rate, with
   every 20th record a probe that causes one warning or stop; the time from its producer
   timestamp to its output being consumed gives p50 and p99; then the worker's peak RSS.

Throughput is (records - those already done at the first observation) / (time of the last
record - time of that observation): from the first record consumed to the last. Progress
goes to stderr, the JSON object is the last stdout line. Exit 0 ok, 1 failure.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from stream_app import broker, harness
from stream_app.bench_feed import FeedMaker, Record, latency_feed, throughput_feed
from stream_app.harness import HarnessError, Worker, free_port
from stream_app.processing import HOUSEHOLD_TOPIC, INPUT_TYPES
from stream_app.records import decode
from stream_app.security import kafka_python_config
from stream_app.settings import DEFAULT_TOPICS, Settings
from stream_app.topology import TABLES, changelog_topic

PROBE_EVERY = 20


class BenchError(RuntimeError):
    pass


@dataclass(frozen=True)
class Plan:
    events: int
    persons: int
    latency_s: float
    seed: int = 1

    @property
    def death_probes(self) -> int:
        return min(500, self.persons // 10, self.events // 20)


FULL = Plan(events=100_000, persons=20_000, latency_s=20.0)
QUICK = Plan(events=5_000, persons=1_000, latency_s=4.0)


# -- pure helpers ----------------------------------------------------------------------


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks (numpy's default)."""
    data = sorted(values)
    if not data:
        raise ValueError("percentile of no values")
    rank = (len(data) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def rate(total: int, first_count: int, first_at: float, last_at: float) -> float:
    """Records per second from the first observation (``first_count`` done) to the last record."""
    if last_at <= first_at or total <= first_count:
        raise BenchError(f"too few records or too short a run to measure ({total - first_count} records)")
    return (total - first_count) / (last_at - first_at)


def metric_sum(text: str, name: str) -> float | None:
    """Sum of a Prometheus metric's series (any labels), or None when absent."""
    found = re.findall(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", text, re.M)
    return sum(float(v) for v in found) if found else None


def metric_sum_where(text: str, name: str, label: str, keep: Callable[[str], bool]) -> float | None:
    """Sum of a metric's series whose ``label`` value passes ``keep``, or None when absent."""
    pattern = rf'^{re.escape(name)}\{{[^}}]*\b{re.escape(label)}="([^"]*)"[^}}]*\}} (\S+)$'
    found = [float(v) for value, v in re.findall(pattern, text, re.M) if keep(value)]
    return sum(found) if found else None


def metric_max(text: str, name: str) -> float | None:
    found = re.findall(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", text, re.M)
    return max(float(v) for v in found) if found else None


def sched_seconds(pid: int) -> tuple[float, float] | None:
    """Seconds on a CPU and seconds runnable but waiting for one, summed over a live process's
    threads (``/proc/<pid>/task/*/schedstat``); None where /proc is missing. The wait says how
    much a shared machine held the process back."""
    on_cpu = waiting = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return None
    for task in tasks:
        try:
            ran, waited, _ = (task / "schedstat").read_text().split()
        except (OSError, ValueError):
            continue  # a thread that ended meanwhile
        on_cpu, waiting = on_cpu + int(ran), waiting + int(waited)
    return on_cpu / 1e9, waiting / 1e9


def cpu_share(before: tuple[float, float] | None, after: tuple[float, float] | None, wall: float) -> str:
    if before is None or after is None or wall <= 0:
        return "(no /proc)"
    return (
        f"used {(after[0] - before[0]) / wall:.0%} of a core and was runnable but waiting "
        f"for a CPU {(after[1] - before[1]) / wall:.0%} of the time (threads summed)"
    )


def peak_rss_mb(pid: int) -> float | None:
    """Peak resident set (VmHWM) of a live process, in MiB; None where /proc is missing."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    return int(found.group(1)) / 1024 if found else None


def summary(
    plan: Plan,
    seconds: float,
    worker: float,
    raw: float,
    naive: float,
    latencies_ms: list[float],
    rss_mb: float | None,
    state_bytes: int,
    state_persons: int,
) -> dict[str, Any]:
    """The contract's JSON object. Ratios are of the rounded figures printed beside them."""
    events_per_s, raw_per_s, naive_per_s = round(worker, 1), round(raw, 1), round(naive, 1)
    return {
        "events": plan.events,
        "persons": plan.persons,
        "seconds": round(seconds, 1),
        "events_per_s": events_per_s,
        "raw_floor_events_per_s": raw_per_s,
        "ratio": round(events_per_s / raw_per_s, 5),
        "naive_faust_events_per_s": naive_per_s,
        "speedup_vs_naive": round(events_per_s / naive_per_s, 3),
        "offered_events_per_s": round(events_per_s / 2, 2),
        "p50_ms": round(percentile(latencies_ms, 50), 1),
        "p99_ms": round(percentile(latencies_ms, 99), 1),
        "latency_samples": len(latencies_ms),
        "peak_rss_mb": round(rss_mb, 1) if rss_mb is not None else None,
        "state_bytes_per_person": round(state_bytes / max(1, state_persons), 1),
    }


# -- plumbing ----------------------------------------------------------------------------


class Progress:
    def __init__(self, err: TextIO) -> None:
        self.err = err
        self.start = time.monotonic()

    def __call__(self, text: str) -> None:
        print(f"[bench {time.monotonic() - self.start:6.1f}s] {text}", file=self.err, flush=True)


def poll_until_done(
    child: Worker,
    total: int,
    read: Callable[[], tuple[float | None, float | None]],
    say: Progress,
    start_timeout: float = 180,
    stall_timeout: float = 60,
) -> float:
    """Poll ``read`` () -> (records done, wall time of the last one) until ``total``; the rate."""
    began = time.monotonic()
    first: tuple[float, float] | None = None  # (count, wall time) at the first observation
    best, best_at, told = 0.0, time.monotonic(), 0.0
    while True:
        child.check_alive()
        done, last_at = read()
        now_wall, now = time.time(), time.monotonic()
        if done:
            if first is None:
                first = (done, now_wall)
                say(f"{child.name}: first records consumed ({int(done)} at the first look)")
            if done >= total:
                return rate(total, int(first[0]), first[1], last_at or now_wall)
            if done > best:
                best, best_at = done, now
            if now - told > 10:
                told = now
                say(f"{child.name}: {int(done)}/{total}")
            if now - best_at > stall_timeout:
                raise BenchError(f"the {child.name} made no progress for {stall_timeout:.0f}s at {int(done)}")
        elif now - began > start_timeout:
            raise BenchError(
                f"the {child.name} consumed nothing within {start_timeout:.0f}s:\n{child.log_tail()}"
            )
        # Fast until the first records (a fast worker may finish a quick run within a second), then
        # slowly: the end time is the child's own, and every poll costs the child a little.
        time.sleep(0.05 if first is None else 0.5)


# -- the steps ---------------------------------------------------------------------------


async def produce(settings: Settings, records: list[Record]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        **kafka_python_config(settings), linger_ms=5, max_batch_size=256 * 1024, acks="all"
    )
    await producer.start()
    try:
        futures = [await producer.send(settings.topic(r.logical), r.value, key=r.key) for r in records]
        await producer.flush()
        for future in futures:
            await future  # raises if a record was not acknowledged
    finally:
        await producer.stop()


async def _assigned_consumer(settings: Settings, topics: list[str], **options: Any) -> Any:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(**kafka_python_config(settings), enable_auto_commit=False, **options)
    await consumer.start()
    parts = []
    for topic in topics:
        found = consumer.partitions_for_topic(topic)
        if not found:
            await consumer.force_metadata_update()
            found = consumer.partitions_for_topic(topic) or set()
        parts += [TopicPartition(topic, p) for p in sorted(found)]
    consumer.assign(parts)
    return consumer, parts


async def raw_floor(settings: Settings, total: int, at_least: int = 50_000) -> float:
    """An aiokafka consumer reading the input topics and decoding each value with the worker's codec.

    The records are read in passes (from the beginning again) until ``at_least`` are read, at
    least 3; the median pass rate is returned.
    """
    types = {settings.topic(logical): record_type for logical, record_type in INPUT_TYPES.items()}
    limit = settings.max_record_bytes
    consumer, parts = await _assigned_consumer(settings, list(types), fetch_max_wait_ms=100)
    rates = []
    try:
        for _ in range(max(3, min(20, math.ceil(at_least / total)))):
            await consumer.seek_to_beginning(*parts)
            done = 0
            first: tuple[int, float] | None = None
            deadline = time.monotonic() + 300
            while done < total:
                batches = await consumer.getmany(timeout_ms=1000, max_records=500)
                for tp, messages in batches.items():
                    record_type = types[tp.topic]
                    for msg in messages:
                        decode(record_type, msg.key, msg.value, limit)
                    done += len(messages)
                if first is None and done:
                    first = (done, time.time())
                if time.monotonic() > deadline:
                    raise BenchError(f"the raw consumer read only {done} of {total} records in 300 s")
            assert first is not None
            rates.append(rate(total, first[0], first[1], time.time()))
    finally:
        await consumer.stop()
    return percentile(rates, 50)


async def table_values(settings: Settings, topics: list[str]) -> tuple[int, int]:
    """Bytes of the newest value of every key in these changelogs (to the fetch high watermark),
    and the number of distinct keys holding one."""
    consumer, parts = await _assigned_consumer(settings, topics, fetch_max_wait_ms=100)
    newest: dict[tuple[str, bytes], int] = {}
    try:
        await consumer.seek_to_beginning(*parts)
        deadline = time.monotonic() + 120
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for tp, messages in batches.items():
                for msg in messages:
                    if msg.value is None:
                        newest.pop((tp.topic, msg.key), None)
                    else:
                        newest[(tp.topic, msg.key)] = len(msg.value)
            # The fetch high watermark, not ListOffsets (wrong on the local broker, BROKER.md).
            ends = [consumer.highwater(tp) for tp in parts]
            positions = [await consumer.position(tp) for tp in parts]
            if all(end is not None and at >= end for at, end in zip(positions, ends, strict=True)):
                break
            if time.monotonic() > deadline:
                raise BenchError("could not read the changelogs to their end within 120 s")
    finally:
        await consumer.stop()
    return sum(newest.values()), len({key for _, key in newest})


async def latency(settings: Settings, records: list[Record], offered: float, say: Progress) -> list[float]:
    """Send ``records`` at ``offered`` per second; ms from each probe's send to its output consumed."""
    from aiokafka import AIOKafkaProducer

    outputs = [settings.topic("ASSISTANCE_WARNINGS"), settings.topic("PAYMENT_STOPS")]
    consumer, parts = await _assigned_consumer(settings, outputs, fetch_max_wait_ms=20)
    # A probe's clock starts at its send call, so the linger counts in its latency.
    producer = AIOKafkaProducer(**kafka_python_config(settings), linger_ms=5, acks="all")
    await producer.start()
    sent_at: dict[str, float] = {}
    took_ms: dict[str, float] = {}
    to_output_ms: list[float] = []  # probe sent to its output's producer timestamp (the worker's part)
    probes = {r.probe for r in records if r.probe}
    sending = True

    async def consume() -> None:
        while sending or len(took_ms) < len(probes):
            batches = await consumer.getmany(timeout_ms=100)
            now = time.time()
            for messages in batches.values():
                for msg in messages:
                    cause = json.loads(msg.value).get("caused_by")
                    if cause in sent_at and cause not in took_ms:
                        took_ms[cause] = (now - sent_at[cause]) * 1000
                        to_output_ms.append(msg.timestamp - sent_at[cause] * 1000)

    try:
        # ListOffsets may answer short of the end locally: older outputs read are not probes'.
        await consumer.seek_to_end(*parts)
        for tp in parts:
            await consumer.position(tp)
        reader = asyncio.create_task(consume())
        loop = asyncio.get_running_loop()
        start = loop.time()
        for n, record in enumerate(records):
            due = start + n / offered
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            now = time.time()
            if record.probe:
                sent_at[record.probe] = now
            await producer.send(
                settings.topic(record.logical), record.value, key=record.key, timestamp_ms=int(now * 1000)
            )
        await producer.flush()
        took = loop.time() - start
        say(f"latency: offered {len(records)} records in {took:.1f}s ({len(records) / took:.0f}/s)")
        sending = False
        try:
            await asyncio.wait_for(reader, 60)
            ordered = [took_ms[r.probe] for r in records if r.probe]
            quarter = max(1, len(ordered) // 4)
            medians = [
                round(percentile(ordered[i : i + quarter], 50)) for i in range(0, len(ordered), quarter)
            ]
            say(f"latency: median per quarter of the probes, in order: {medians} ms")
            say(
                f"latency: median {percentile(to_output_ms, 50):.0f} ms from probe sent to its output's "
                f"producer timestamp, {percentile(took_ms.values(), 50):.0f} ms to the output consumed"
            )
        except TimeoutError:
            missing = sorted(probes - took_ms.keys())
            raise BenchError(
                f"{len(missing)} of {len(probes)} probes' outputs did not arrive within 60 s: {missing[:5]}"
            ) from None
    finally:
        sending = False
        await producer.stop()
        await consumer.stop()
    return list(took_ms.values())


# -- the run ------------------------------------------------------------------------------


def run(settings: Settings, plan: Plan, own_broker: bool, out: TextIO, err: TextIO) -> int:
    say = Progress(err)
    try:
        result = _run(settings, plan, own_broker, say)
    except (BenchError, broker.BrokerError, HarnessError) as exc:
        say(f"failed: {exc}")
        return 1
    except Exception as exc:  # a client or OS error: one line, exit 1
        say(f"failed: {type(exc).__name__}: {exc}")
        return 1
    out.write(json.dumps(result) + "\n")
    out.flush()
    return 0


def _run(settings: Settings, plan: Plan, own_broker: bool, say: Progress) -> dict[str, Any]:
    began = time.monotonic()
    tag = uuid.uuid4().hex[:8]
    work = Path(tempfile.mkdtemp(prefix="stream-app-bench-"))
    local = None
    children: list[Worker] = []
    try:
        if own_broker:
            port = free_port()
            say(f"starting the local broker (tansu, memory only) on 127.0.0.1:{port}")
            local = harness.start_broker("127.0.0.1", port)
            settings = replace(settings, broker=local.url)
        else:
            host, port_text = settings.bootstrap_servers[0].rsplit(":", 1)
            if not broker.port_open(host, int(port_text)):
                raise BenchError(f"STREAM_APP_BROKER={settings.broker} is not reachable")
            say(f"using the broker at {settings.broker}")
        settings = replace(
            settings,
            app_id=f"bench-{tag}",
            topics={logical: f"bench-{tag}.{name}" for logical, name in DEFAULT_TOPICS.items()},
        )
        harness.ensure_topics(settings, wait_s=30)

        maker = FeedMaker(plan.persons, plan.seed, death_probes=plan.death_probes)
        feed = throughput_feed(maker, plan.events)
        t = time.monotonic()
        asyncio.run(produce(settings, feed))
        say(f"produced {len(feed)} records over {plan.persons} persons in {time.monotonic() - t:.1f}s")

        raw = asyncio.run(raw_floor(settings, plan.events))
        say(f"raw floor (aiokafka + records.decode): {raw:.0f} records/s")

        env = {**os.environ, "STREAM_APP_BROKER": settings.broker, **harness.topic_env(settings.topics)}

        naive_env = harness.worker_env(
            env, work / "naive-state", free_port(), STREAM_APP_APP_ID=f"bench-naive-{tag}"
        )
        say("starting the naive Faust agent")
        naive_child = Worker(naive_env, work / "naive.log", "stream_app.bench_naive", (), "naive agent")
        children.append(naive_child.start(wait_ready=False))

        def naive_progress() -> tuple[float | None, float | None]:
            status, counts = naive_child.get("/count/")
            if status != 200:
                return None, None
            return counts["consumed"], counts["last_at"]

        naive = poll_until_done(naive_child, plan.events, naive_progress, say)
        say(f"naive Faust agent: {naive:.0f} records/s")
        naive_child.terminate(30)

        worker_env = harness.worker_env(
            env,
            work / "worker-state",
            free_port(),
            STREAM_APP_APP_ID=settings.app_id,
            STREAM_APP_WEB_HOST="127.0.0.1",
        )
        say("starting the worker")
        household_topic = settings.topic(HOUSEHOLD_TOPIC)
        worker = Worker(worker_env, work / "worker.log")
        children.append(worker.start(wait_ready=False))

        sched: list[tuple[tuple[float, float] | None, float]] = []  # (schedstat, monotonic) at first look

        def worker_progress() -> tuple[float | None, float | None]:
            status, body = worker.get("/metrics")
            if status != 200:
                return None, None
            consumed = "benefit_integrity_records_consumed_total"
            done = metric_sum_where(body, consumed, "topic", lambda topic: topic != household_topic)
            last = metric_max(body, "benefit_integrity_last_consumed_timestamp_seconds")
            # R7: an input record is done once what it forwarded to the household topic is too.
            forwards = metric_sum(body, "benefit_integrity_household_forwards_total") or 0.0
            households = (
                metric_sum_where(body, consumed, "topic", lambda topic: topic == household_topic) or 0.0
            )
            if done is not None and done >= plan.events and households < forwards:
                done = plan.events - 1
            if done and not sched:
                sched.append((sched_seconds(worker.pid), time.monotonic()))
            return done, last

        events_per_s = poll_until_done(worker, plan.events, worker_progress, say)
        busy = cpu_share(sched[0][0], sched_seconds(worker.pid), time.monotonic() - sched[0][1])
        say(f"worker: {events_per_s:.0f} records/s; {busy}")

        changelogs = [changelog_topic(settings.app_id, table.name) for table in TABLES]
        state_bytes, state_persons = asyncio.run(table_values(settings, changelogs))
        say(f"table values: {state_bytes} bytes over {state_persons} persons")

        offered = events_per_s / 2
        count = max(PROBE_EVERY * 20, int(offered * plan.latency_s))
        records = latency_feed(maker, count, PROBE_EVERY)
        say(f"latency: {count} records at {offered:.0f}/s, every {PROBE_EVERY}th a probe")
        sched_before, own_before = sched_seconds(worker.pid), time.process_time()
        wall_before = time.monotonic()
        latencies = asyncio.run(latency(settings, records, offered, say))
        wall = time.monotonic() - wall_before
        say(
            f"latency phase: the worker {cpu_share(sched_before, sched_seconds(worker.pid), wall)}; "
            f"the bench itself used {(time.process_time() - own_before) / wall:.0%} of a core"
        )
        worker.check_alive()
        rss = peak_rss_mb(worker.pid)
        worker.terminate(60)
        on_disk = sum(f.stat().st_size for f in (work / "worker-state").rglob("*") if f.is_file())
        say(f"the worker's data dir (RocksDB, logs included): {on_disk / 2**20:.1f} MiB")
        result = summary(
            plan,
            time.monotonic() - began,
            events_per_s,
            raw,
            naive,
            latencies,
            rss,
            state_bytes,
            state_persons,
        )
        say("done")
        return result
    finally:
        for child in children:
            child.terminate(30)
        if local is not None:
            local.stop()
        shutil.rmtree(work, ignore_errors=True)
