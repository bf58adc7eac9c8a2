"""Small replacements of Faust internals, each pinned to the versions it was checked on.

faust-streaming 0.15.3, mode-streaming 0.7.1 and aiokafka 0.14.0 (see pyproject.toml).
Each patch says why it exists; ``tests/unit/test_faust_patches.py`` notices when an
upgrade breaks one, and the crash harness (``tests/integration/test_crash_harness.py``)
shows what each one prevents.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from typing import Any

import faust
import rocksdict
from aiokafka import errors as kafka_errors
from aiokafka.protocol.fetch import FetchRequest
from faust.transport import consumer as faust_consumer
from faust.transport import producer as faust_producer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, EventT
from mode import services as mode_services
from mode.utils import queues as mode_queues

log = logging.getLogger("stream_app.faust_patches")

PINNED = {"faust-streaming": "0.15.3", "mode-streaming": "0.7.1", "aiokafka": "0.14.0"}

_original_create_worker_consumer = faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer
_fetch_max_wait_ms: int | None = None


def _create_worker_consumer(self: Any, transport: Any) -> Any:
    consumer = _original_create_worker_consumer(self, transport)
    if _fetch_max_wait_ms is not None:
        consumer._fetch_max_wait_ms = _fetch_max_wait_ms  # read by aiokafka's Fetcher at start()
    return consumer


def set_fetch_wait(milliseconds: int | None) -> None:
    """``None`` keeps Faust's own value. Faust fixes the worker consumer's ``fetch_max_wait_ms`` at 1500.

    Apache Kafka answers a fetch as soon as data arrives, so that only bounds idle
    polls. The local tansu broker holds a fetch over several partitions for the whole
    wait (measured with a plain aiokafka consumer: 382 ms median at 1500, 13 ms at
    100), which put ~0.75 s between a record and its output. Local broker only.
    """
    global _fetch_max_wait_ms
    _fetch_max_wait_ms = milliseconds
    faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer


# -- 1. Records dropped when flow resumes -----------------------------------------------
#
# ``FlowControlEvent.resume`` empties every stream queue. That is right after a
# suspension (a rebalance: the queued records belong to the old assignment and are
# fetched again from the committed offsets). But Faust's recovery resumes flow twice:
# once to read the changelogs, then again after it has resumed the input partitions
# and awaited a seek (``faust/tables/recovery.py`` ``on_recovery_completed``). Records
# fetched in between are already queued and their read offsets recorded, so the second
# resume silently drops them: a restart that finds a backlog skipped 49-467 records, and
# the gap then stalled every later commit of that partition (the consumer's head-of-acked
# gap check). Empty the queues only when flow really was suspended.


def _resume_flow(self: mode_queues.FlowControlEvent) -> None:
    was_suspended = self._suspend.is_set()
    self._suspend.clear()
    self._resume.set()
    if was_suspended:
        self.clear()


# -- 2. A commit before the changelog is written ---------------------------------------
#
# Table writes go to the changelog through Faust's ProducerBuffer. Before committing
# offsets the consumer calls ``producer.flush()``, whose buffer flush (a) does not count
# the message its sender task holds in hand, and (b) gives up after 0.1 s without
# progress; aiokafka's ``flush()`` then waits only for batches that already exist. So an
# offset could be committed while the state change of that record was still on its way
# to the changelog: a kill then, and a rebuild from the changelog, lose it for good.
# The buffer below counts messages put and handed to the client, and its flush waits
# until everything put before the flush began has been handed over (new writes during
# the wait do not prolong it), so aiokafka's flush then covers it.


def _buffer_put(self: Any, fut: Any) -> None:
    self._stream_app_put = getattr(self, "_stream_app_put", 0) + 1
    _original_buffer_put(self, fut)


def _counting(send_pending: Any) -> Any:
    """Count each message once its hand-over to the client is over (sent, or failed)."""

    async def counted(self: Any, fut: Any) -> None:
        try:
            await send_pending(self, fut)
        finally:
            self._stream_app_sent = getattr(self, "_stream_app_sent", 0) + 1

    return counted


async def _buffer_flush(self: Any) -> None:
    if self.app is not None and self.app.conf.producer_threaded:
        await _original_buffer_flush(self)  # not used by this project; left as Faust has it
        return
    target = getattr(self, "_stream_app_put", 0)
    waited = 0.0
    while getattr(self, "_stream_app_sent", 0) < target:
        if self.state != "running":
            raise RuntimeError("Cannot flush: Producer not Running")
        self.message_sent.clear()
        try:
            await asyncio.wait_for(self.message_sent.wait(), timeout=1.0)
        except TimeoutError:
            waited += 1.0
            if waited % 10 == 0:
                log.warning(
                    "changelog writes not handed to the broker client after %.0fs (%d left); "
                    "offsets are not committed meanwhile",
                    waited,
                    target - getattr(self, "_stream_app_sent", 0),
                )


# -- 6. A partition never committed is not rewound --------------------------------------
#
# Faust drops records it has fetched but not handed to the agent when flow stops or the
# generation changes (a rebalance, a recovery), and relies on the seek to the committed
# offsets that ends every recovery to fetch them again. aiokafka's ``seek_to_committed``
# seeks only where an offset above 0 was committed: a partition whose records were never
# committed (a new deployment, a feed that has been quiet, a worker killed before its
# first commit) stays where the dropped fetch left it, and those records are never
# processed. Found by the crash harness (seed 616421): a restarted worker began a
# partition at offset 111 with nothing committed, and 108 records (their warnings and
# stops) were lost; another run stalled with nothing committed and nothing left to read.
# Such partitions are sent back to where the reset policy starts a new group.


async def _seek_to_committed(self: Any) -> Any:
    consumer = self._ensure_consumer()
    committed = await self.call_thread(consumer.seek_to_committed)
    acks_enabled_for = self.app.topics.acks_enabled_for  # the inputs; changelogs are Faust's own
    fresh = [tp for tp, offset in committed.items() if not offset or offset < 0]
    fresh = [tp for tp in fresh if acks_enabled_for(tp.topic)]
    if fresh:
        if self.app.conf.consumer_auto_offset_reset == "latest":
            await self.call_thread(consumer.seek_to_end, *fresh)
        else:
            await self.call_thread(consumer.seek_to_beginning, *fresh)
    return committed


_original_seek_to_committed = faust_aiokafka.AIOKafkaConsumerThread.seek_to_committed
_original_buffer_put = faust_producer.ProducerBuffer.put
_original_send_pending = faust_producer.ProducerBuffer._send_pending
_original_buffer_flush = faust_producer.ProducerBuffer.flush
_buffer_send_pending = _counting(_original_send_pending)


# -- 3. The consumer's hand-off: one task per record for records that never wait -------
#
# ``Consumer._drain_messages`` hands each fetched record to the streams through
# ``Service.wait_first(callback(message), suspend_flow.wait())``, so that a flow
# suspension (a rebalance) can interrupt a hand-off that waits (a full stream queue).
# ``wait_first`` wraps every argument in a task (four per record, with ``stopped`` and
# ``crashed``) and waits a turn of the event loop: ~90 us a record measured, and, worse
# for batches, the streams then see one record per turn of the loop, never a backlog.
# Almost always the hand-off does not wait: it puts the event in the stream's queue. So
# the coroutine is first run by itself; if it finishes without waiting, that is the
# result ``wait_first`` would have given (the other arguments are then never awaited);
# if it has to wait, it goes on from where it stopped, raced against the others as before.


class _Resumed:
    """A coroutine already stepped once, awaited from where it stopped: what ``await`` (PEP 380
    delegation) does from the second step on, values and exceptions passed through."""

    def __init__(self, coro: Any, yielded: Any) -> None:
        self.coro, self.yielded = coro, yielded

    def __await__(self) -> Any:
        coro, value = self.coro, self.yielded
        while True:
            try:
                sent = yield value  # the future it waits on, to the task that runs us
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # cancellation thrown in by the task: into the coroutine
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def _wait_first(self: Any, *coros: Any, timeout: Any = None) -> Any:
    first = coros[0] if coros else None
    if not asyncio.iscoroutine(first) or self._stopped.is_set() or self._crashed.is_set():
        return await _original_wait_first(self, *coros, timeout=timeout)
    try:
        yielded = first.send(None)
    except StopIteration as done:
        for other in coros[1:]:
            if asyncio.iscoroutine(other):
                other.close()  # never started: nothing to undo
        return mode_services.WaitResults([first], [done.value], False)
    except BaseException:
        for other in coros[1:]:
            if asyncio.iscoroutine(other):
                other.close()
        raise
    resumed = _Resumed(first, yielded)
    results = await _original_wait_first(self, resumed, *coros[1:], timeout=timeout)
    return results._replace(done=[first if c is resumed else c for c in results.done])


_original_wait_first = faust_consumer.Consumer.wait_first


# -- 4. The hand-off of a batch: events already buffered, and table writes after them ----
#
# Not patches: two small pieces of Faust's stream iterator, reused by the batched agent
# (``agents/persons.py``). Both follow faust 0.15.3's ``_CStreamIterator`` (the compiled
# iterator the worker runs) and ``faust/tables/base.py``.


def take_buffered(stream: Any, limit: int) -> list[Any]:
    """Up to ``limit`` events that already wait in ``stream``'s queue, never waiting for one.

    Each is tracked as unacknowledged, the sensors told and its generation checked exactly
    as the stream's own iterator does before it yields an event (``_prepare_event``); an
    event of an older consumer generation is dropped as there. The caller acknowledges
    each with ``stream.ack(event)``. Nothing is taken while flow is suspended (a
    rebalance), so a batch never holds an event the consumer waits to see acknowledged
    while it waits for more: the batch in hand is finished first.
    """
    queue = stream.channel.queue
    app = stream.app
    flow = app.flow_control
    consumer = app.consumer
    acking_topics = app.topics._acking_topics
    add_unacked = consumer._unacked_messages.add
    on_message_in = stream._on_message_in
    on_stream_event_in = stream._on_stream_event_in
    taken: list[Any] = []
    while len(taken) < limit and flow.is_active() and not queue.empty():
        event = queue.get_nowait()  # raises an error thrown into the channel, as the iterator would
        if not isinstance(event, EventT):  # a topic's channel carries only events
            raise TypeError(f"a stream of events expected, got {type(event).__name__}")
        message = event.message
        if message.generation_id != app.consumer_generation_id:
            continue  # fetched before a rebalance: fetched again from the committed offset
        if message.topic in acking_topics and not message.tracked:
            message.tracked = True
            add_unacked(message)
            on_message_in(message.tp, message.offset, message)
        on_stream_event_in(message.tp, message.offset, stream, event)
        stream.events_total += 1
        taken.append(event)
    return taken


class EventScope:
    """The partition of the record being processed, for the table reads and writes of
    ``BatchTable`` and the staged writes of ``StagedState`` (see ``stream_app/state.py``).

    A person's state lives in the partition (RocksDB and changelog) of the records keyed by
    that person. Faust's own tables take it from the event being processed (a context
    variable holding a weak reference, set per event: about 3% of a worker's time behind a
    backlog when set for every record of a batch); the batched agent sets this plain value
    instead, right before each record is processed. Processing and flushing never await, so
    the other agent on the loop never runs in between. A batch's writes are flushed after the
    batch: each key is written in the partition captured when it was staged.
    """

    partition: int | None = None

    def capture(self) -> object:
        return EventScope.partition

    def enter(self, captured: object) -> object:
        previous = EventScope.partition
        EventScope.partition = captured  # type: ignore[assignment]
        return previous

    def leave(self, token: object) -> None:
        EventScope.partition = token  # type: ignore[assignment]

    @classmethod
    def current(cls, event: Any) -> None:
        """Make ``event``'s partition the current one (before the record is processed)."""
        cls.partition = event.message.partition

    @classmethod
    def clear(cls) -> None:
        """No record in hand (after a batch): a table read then looks in every partition."""
        cls.partition = None


# -- 5. A batch's table writes: the store at once, the changelog straight to the producer --
#
# And reads: a Faust table's ``get`` looks a key up twice in RocksDB (``in``, then the
# value), through three layers and a sensor call per read; here the record's partition
# db is asked once, as Faust's RocksDB store does. Faust's table sensors (reads, writes,
# deletes) are told once per batch with the counts (``LeanPrometheusMonitor``).
#
# A Faust table assignment writes RocksDB, then queues the changelog record in the
# producer's buffer, which hands records to the client one at a time (a task hop, the
# send sensors, a persisted-offset write per record: 200-300 us each), and once more than
# 100 wait, makes the consumer's hand-off wait and log a warning per record. A batch
# writes hundreds of keys at once. So the flush writes each key as Faust would (RocksDB,
# in the partition of the current event, which ``EventScope`` makes the record that wrote
# it; Faust's table sensors), queues its changelog record with that partition, and
# ``send`` then appends them to the producer client directly: each batch's records go
# out together, and the persisted offset is written once per partition and batch.
# ``send`` returns once every record is in the client's accumulator, which the flush
# before each offset commit waits for (patch 2, then aiokafka's ``flush``); the agent
# acknowledges its records only after it.


class BatchTable:
    """One Faust table as ``TableState`` reads and writes it (see patch 5 above)."""

    def __init__(self, table: Any) -> None:
        self.table = table
        #: This batch's RocksDB writes, one write batch per partition db (``write_store``).
        self._writes: dict[int, Any] = {}
        #: Changelog records not yet handed to the producer: partition -> (key, value), in order.
        self._queued: dict[int, deque[tuple[bytes, bytes | None]]] = defaultdict(deque)
        #: Table reads, writes and deletes since the last ``send``, told to Faust's sensors then.
        self._operations = [0, 0, 0]

    def get(self, key: str | bytes) -> bytes | None:
        self._operations[0] += 1
        partition = EventScope.partition
        store = self.table.data
        if partition is None:  # outside a record: Faust's own lookup over every partition
            return store.get(key)
        # What Faust's RocksDB store does for a read in an event (``Store._get``), without
        # the per-read layers: the record's partition db, asked once. (Faust's key index, a
        # hint of a key's partition for reads outside an event, is left to Faust's own path:
        # without it those reads look in every partition db.)
        raw_key = key if isinstance(key, bytes) else key.encode()  # the "raw" key serializer
        value: bytes | None = store._db_for_partition(partition).get(raw_key)
        return value

    def __setitem__(self, key: str | bytes, value: bytes) -> None:
        self._write(key, value)

    def pop(self, key: str | bytes, default: Any = None) -> Any:
        self._write(key, None)
        return default

    def _write(self, key: str | bytes, value: bytes | None) -> None:
        partition = EventScope.partition
        if partition is None:
            raise RuntimeError("a table write outside of a record (no partition to write it to)")
        raw_key = key if isinstance(key, bytes) else key.encode()  # the "raw" key serializer
        if value is None:
            self.write_store()  # keep the order of this key's writes: earlier ones first
            self.table.data.pop(key, None)  # RocksDB: every partition's copy, as Faust's delete does
            self._operations[2] += 1
        else:
            writes = self._writes.get(partition)
            if writes is None:
                writes = self._writes[partition] = rocksdict.WriteBatch(raw_mode=True)
            writes.put(raw_key, value)  # the record's partition db, as Faust's ``Store._set``
            self._operations[1] += 1
        self._queued[partition].append((raw_key, value))

    def write_store(self) -> None:
        """Write the batch's RocksDB writes, one write per partition db. ``Runtime.save_state``
        calls it once the staged state is flushed, before any changelog record is sent."""
        writes, self._writes = self._writes, {}
        store = self.table.data
        for partition, batch in writes.items():
            store._db_for_partition(partition).write(batch)

    def _tell_sensors(self) -> None:
        """Faust's table sensors, once per batch: ``LeanPrometheusMonitor`` takes the counts at
        once; any other monitor is called once per operation, as Faust's table would."""
        retrieved, updated, deleted = self._operations
        if not (retrieved or updated or deleted):
            return
        self._operations = [0, 0, 0]
        table = self.table
        at_once = getattr(table.app.monitor, "on_table_operations", None)
        if at_once is not None:
            at_once(table, retrieved, updated, deleted)
            return
        for _ in range(retrieved):
            table._sensor_on_get(table, None)
        for _ in range(updated):
            table._sensor_on_set(table, None, None)
        for _ in range(deleted):
            table._sensor_on_del(table, None)

    async def send(self) -> None:
        """Hand every queued changelog record to the producer client: per partition, in
        order, in as few record batches as they fit in. A record leaves the queue only once
        its batch is handed over: after a failure, ``send`` again."""
        self.write_store()  # never a changelog record before its RocksDB write
        self._tell_sensors()
        client = self.table.app.producer._ensure_producer()  # the aiokafka producer
        topic = self.table.changelog_topic.get_topic_name()
        for partition, queued in self._queued.items():
            while queued:
                batch, count = client.create_batch(), 0
                for key, value in queued:
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        break  # full: the rest go in the next batch
                    count += 1
                future = await client.send_batch(batch, topic, partition=partition)
                for _ in range(count):
                    queued.popleft()
                # The batch's last record is at its base offset + count - 1.
                future.add_done_callback(functools.partial(self._persisted, TP(topic, partition), count - 1))

    def _persisted(self, tp: TP, last: int, future: Any) -> None:
        if future.cancelled() or future.exception() is not None:
            return  # not in the changelog: recovery reads it again from the last offset kept
        # What Faust's own write path keeps per record (``Collection._on_changelog_sent``):
        # where a restart on this data dir resumes reading the changelog. Batches of one
        # partition are acknowledged in order, so the last one's offset says every earlier
        # record is in the changelog too.
        self.table.data.set_persisted_offset(tp, future.result().offset + last)


# -- 9. Input records handed over as the bytes they are ----------------------------------
#
# Not a patch: a ``faust.Schema`` (Faust's extension point for how a topic's records become
# events). The agents' topics are raw bytes in and out; Faust's own decode still asks the
# serializer registry for the key and the value of every record (codec lookup, ``raw``
# codec, payload preparation: about 3% of a worker's time behind a backlog) only to hand
# the same bytes back. This one builds the event from the message's bytes directly.


class RawSchema(faust.Schema):
    """Key and value as bytes, exactly as Faust's ``raw`` serializer gives them."""

    def __init__(self) -> None:
        super().__init__(key_serializer="raw", value_serializer="raw")

    def compile(self, app: Any, **kwargs: Any) -> Any:
        create_event = app.create_event

        async def decode(message: Any, *, propagate: bool = False) -> Any:
            return create_event(message.key, message.value, message.headers, message)

        return decode


# -- 8. Outputs straight to the producer, in record batches --------------------------------
#
# Not a patch: what ``Topic.send`` does for the agent's outputs (raw bytes, no partition,
# headers or timestamp), without its layers, for a whole batch's outputs at once.
# ``Topic.send`` wraps every record in a ``PendingMessage`` and a ``FutureMessage``, passes
# it through the channel, then the client's ``send`` (a future per record): about 6% of a
# worker's time behind a backlog, where every other settlement is forwarded to the household
# topic. Here each record is partitioned by the client's own partitioner (so it lands where
# ``Topic.send`` puts it), records of one partition go in order into as few record batches
# as they fit in, and Faust's send sensors are told per record as before (its
# ``topic_messages_sent`` and send latency series count the same).


async def send_all(records: Sequence[tuple[Any, bytes | None, bytes]]) -> list[asyncio.Future]:
    """Send ``(topic, key, value)`` records (Faust topics of one name each); the futures of
    their batches' acknowledgements: once all are done, every record is acknowledged."""
    if not records:
        return []
    app = records[0][0].app
    producer = await app.maybe_start_producer()
    client = producer._ensure_producer()  # the aiokafka producer
    sensors = app.sensors
    names: dict[Any, str] = {}
    by_partition: dict[tuple[str, int], list[tuple[bytes | None, bytes, Any]]] = {}
    for topic, key, value in records:
        name = names.get(topic)
        if name is None:
            name = names[topic] = topic.get_topic_name()
            await client.client._wait_on_metadata(name)
        partition = client._partition(name, None, key, value, key, value)
        keysize = 0 if key is None else len(key)
        state = sensors.on_send_initiated(producer, name, message=None, keysize=keysize, valsize=len(value))
        by_partition.setdefault((name, partition), []).append((key, value, state))
    futures = []
    for (name, partition), items in by_partition.items():
        while items:
            batch, count = client.create_batch(), 0
            for key, value, _ in items:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    break  # full: the rest go in the next batch
                count += 1
            future = await client.send_batch(batch, name, partition=partition)
            states = [state for _, _, state in items[:count]]
            future.add_done_callback(functools.partial(_on_sent, sensors, producer, states))
            futures.append(future)
            items = items[count:]
    return futures


def _on_sent(sensors: Any, producer: Any, states: list[Any], future: asyncio.Future) -> None:
    if future.cancelled():
        return
    exc = future.exception()
    for state in states:
        if exc is not None:
            sensors.on_send_error(producer, exc, state)
        else:
            sensors.on_send_completed(producer, state, future.result())


# -- 7. Table recovery stops short of the changelog's end (local broker) ------------------
#
# Recovery reads each changelog partition up to its "highwater", which Faust takes from
# ``AIOKafkaConsumerThread._highwaters``: aiokafka's ``end_offsets``, a ListOffsets request.
# The local tansu broker answers ListOffsets with "base offset of the last batch + 1", so
# after a multi-record batch recovery stopped inside it and silently dropped the keys written
# in the rest of that batch (and a restart on a kept data dir, whose persisted offset was
# past that answer, died with ``ConsistencyError``). The high watermark carried in fetch
# responses is right on tansu. So, on the local broker only, the highwaters are completed by
# one small fetch per broker at the ListOffsets answer (which is never past the real end, so
# the fetch is valid; it returns at most the last batch). On Apache Kafka ListOffsets is the
# high watermark already, and Faust's own path stays in place.

_highwaters_from_fetch = False
_FETCH_TIMEOUT_S = 30.0  # Faust bounds the whole step by broker_request_timeout (90 s) too


async def fetch_high_watermarks(client: Any, offsets: Mapping[Any, int]) -> dict[Any, int]:
    """The high watermark that fetch responses give, per partition in ``offsets``.

    ``client`` is an aiokafka ``AIOKafkaClient``; ``offsets`` maps each partition (a
    topic/partition named tuple) to the offset to fetch at, which must be in range: its
    end offset by ListOffsets. One fetch per leader, at most a batch per partition read.
    """
    pending = dict(offsets)
    found: dict[Any, int] = {}
    # tansu answers a fetch whose max wait is 0 with no partitions at all; Kafka answers
    # at once when min_bytes is 0. Grow the wait while partitions are still unanswered.
    wait_ms = 10
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _FETCH_TIMEOUT_S
    while pending:
        if loop.time() > deadline:
            raise kafka_errors.KafkaTimeoutError(f"no fetch high watermark for {sorted(pending)}")
        by_node: dict[int, dict[str, list[tuple[int, int, int]]]] = defaultdict(lambda: defaultdict(list))
        stale = False
        for tp, offset in pending.items():
            node = client.cluster.leader_for_partition(tp)
            if node is None or node == -1:
                stale = True
                continue
            by_node[node][tp.topic].append((tp.partition, offset, 1))  # max 1 byte: one batch comes anyway
        by_name = {(tp.topic, tp.partition): tp for tp in pending}
        for node, topics in by_node.items():
            request = FetchRequest(wait_ms, 0, 1 << 20, 0, list(topics.items()))  # 0: read uncommitted
            try:
                response = await client.send(node, request)
            except kafka_errors.KafkaError as exc:
                if not exc.retriable:
                    raise
                stale = True  # the node went away or is not ready: new metadata, then again
                continue
            for topic, partitions in response.topics:
                for partition, error_code, highwater, *_ in partitions:
                    tp = by_name.get((topic, partition))
                    if tp is None:
                        continue
                    error = kafka_errors.for_code(error_code)
                    if error is kafka_errors.NoError:
                        found[tp] = highwater
                        del pending[tp]
                    elif error.retriable or error.invalid_metadata:
                        stale = True
                    else:
                        raise error(f"fetching the high watermark of {tp}")
        if stale:
            await client.force_metadata_update()
            await asyncio.sleep(0.1)  # a retry backoff, as aiokafka's own ListOffsets has
        wait_ms = min(wait_ms * 4, 500)
    return found


async def _highwaters(self: Any, partitions: Sequence[Any]) -> Mapping[Any, int]:
    ends = await _original_highwaters(self, partitions)
    if not _highwaters_from_fetch or self.consumer.in_transaction:
        return ends
    consumer = self._ensure_consumer()
    fetched = await fetch_high_watermarks(consumer._client, {tp: ends[tp] for tp in partitions if tp in ends})
    # max: a fetch high watermark below ListOffsets would be a broker fault of its own; never read less.
    highwaters = {tp: max(end, fetched.get(tp, end)) for tp, end in ends.items()}
    short = sum(1 for tp, end in ends.items() if highwaters[tp] > end)
    if short:
        log.info(
            "recovery reads %d of %d changelog partitions past the broker's ListOffsets answer, "
            "to the fetch high watermark (%d records more)",
            short,
            len(ends),
            sum(highwaters[tp] - end for tp, end in ends.items()),
        )
    return highwaters


def set_highwaters_from_fetch(enabled: bool) -> None:
    """True on the local broker: recovery reads each changelog to the fetch high watermark."""
    global _highwaters_from_fetch
    _highwaters_from_fetch = enabled


_original_highwaters = faust_aiokafka.AIOKafkaConsumerThread._highwaters


def install() -> None:
    """Apply the patches (idempotent). Called when the app is built."""
    mode_queues.FlowControlEvent.resume = _resume_flow
    faust_producer.ProducerBuffer.put = _buffer_put
    faust_producer.ProducerBuffer._send_pending = _buffer_send_pending
    faust_producer.ProducerBuffer.flush = _buffer_flush
    faust_consumer.Consumer.wait_first = _wait_first
    faust_aiokafka.AIOKafkaConsumerThread.seek_to_committed = _seek_to_committed
    faust_aiokafka.AIOKafkaConsumerThread._highwaters = _highwaters


def uninstall() -> None:
    """Faust as released (for tests that show what a patch prevents)."""
    mode_queues.FlowControlEvent.resume = _original_resume
    faust_producer.ProducerBuffer.put = _original_buffer_put
    faust_producer.ProducerBuffer._send_pending = _original_send_pending
    faust_producer.ProducerBuffer.flush = _original_buffer_flush
    faust_consumer.Consumer.wait_first = _original_wait_first
    faust_aiokafka.AIOKafkaConsumerThread.seek_to_committed = _original_seek_to_committed
    faust_aiokafka.AIOKafkaConsumerThread._highwaters = _original_highwaters


_original_resume = mode_queues.FlowControlEvent.resume
