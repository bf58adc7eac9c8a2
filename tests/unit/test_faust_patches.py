"""The pinned Faust patches still reach the objects they mean to change."""

from __future__ import annotations

import asyncio

from stream_app import faust_patches
from stream_app.app import create_app
from stream_app.settings import load


def worker_consumer_fetch_wait(tmp_path, broker: str) -> int:
    async def build() -> int:
        app, _ = create_app(load({"STREAM_APP_BROKER": broker, "STREAM_APP_DATA_DIR": str(tmp_path)}))
        thread = app.consumer._thread
        consumer = thread._create_worker_consumer(app.transport)
        return consumer._fetch_max_wait_ms

    return asyncio.run(build())


def test_local_broker_gets_a_short_fetch_wait(tmp_path):
    assert worker_consumer_fetch_wait(tmp_path, "kafka://127.0.0.1:9092") == 100


def test_real_kafka_keeps_fausts_fetch_wait(tmp_path):
    assert worker_consumer_fetch_wait(tmp_path, "kafka://kafka-bootstrap.kafka.svc:9093") == 1500


# -- flow control: queued records survive a resume that follows no suspension ----------


def queued_after(patched: bool, suspend_first: bool) -> int:
    from mode.utils.queues import FlowControlEvent, FlowControlQueue

    (faust_patches.install if patched else faust_patches.uninstall)()
    try:

        async def run() -> int:
            flow = FlowControlEvent(initially_suspended=True)
            queue: FlowControlQueue = FlowControlQueue(flow_control=flow, clear_on_resume=True)
            flow.resume()  # recovery resumes flow to read the changelogs
            queue.put_nowait("an input record fetched after its partition was resumed")
            if suspend_first:
                flow.suspend()  # a rebalance: queued records belong to the old assignment
            flow.resume()  # recovery completed
            return queue.qsize()

        return asyncio.run(run())
    finally:
        faust_patches.install()


def test_resume_without_suspension_keeps_queued_records():
    assert queued_after(patched=True, suspend_first=False) == 1


def test_resume_after_suspension_still_empties_the_queues():
    assert queued_after(patched=True, suspend_first=True) == 0


def test_released_faust_drops_them_which_is_the_defect_patched():
    assert queued_after(patched=False, suspend_first=False) == 0


# -- the pre-commit flush covers every message put before it -----------------------------


class _Conf:
    producer_threaded = False


class _App:
    conf = _Conf()


def flushed_before_return(patched: bool) -> tuple[int, int]:
    """Put 3 messages whose hand-over to the client takes 0.3 s each; flush; count handed over."""
    from faust.transport.producer import ProducerBuffer

    (faust_patches.install if patched else faust_patches.uninstall)()
    try:

        async def run() -> tuple[int, int]:
            handed: list[str] = []

            class SlowBuffer(ProducerBuffer):
                async def _send_pending(self, fut: str) -> None:
                    await asyncio.sleep(0.3)  # aiokafka waiting for room in its accumulator
                    handed.append(fut)

            if patched:  # the patched counters wrap the subclass's hand-over too
                SlowBuffer._send_pending = faust_patches._counting(SlowBuffer._send_pending)  # type: ignore[method-assign]
            buffer = SlowBuffer()
            buffer.app = _App()
            await buffer.start()
            for n in range(3):
                buffer.put(f"changelog record {n}")
            await asyncio.sleep(0)  # the sender task takes the first one in hand
            await buffer.flush()
            done = len(handed)
            while not buffer.pending.empty():  # stopping flushes again; nothing left to show
                buffer.pending.get_nowait()
            await buffer.stop()
            return done, 3

        return asyncio.run(run())
    finally:
        faust_patches.install()


def test_flush_waits_for_every_message_put_before_it():
    done, put = flushed_before_return(patched=True)
    assert done == put


def test_released_faust_flush_returns_with_messages_in_hand_which_is_the_defect_patched():
    done, put = flushed_before_return(patched=False)
    assert done < put


def test_patches_are_pinned_to_the_checked_versions():
    from importlib.metadata import version

    assert {name: version(name) for name in faust_patches.PINNED} == faust_patches.PINNED, (
        "a pinned dependency changed: re-check each patch in stream_app/faust_patches.py against it"
    )


# -- the consumer's hand-off: a record that never waits takes no turn of the event loop ---


def hand_off(patched: bool, waits: bool, suspend: bool) -> tuple[list[str], object]:
    """``Consumer.wait_first(callback(message), suspend_flow.wait())`` as the fetcher calls it."""
    from faust.transport.consumer import Consumer
    from mode import Service

    (faust_patches.install if patched else faust_patches.uninstall)()
    try:

        async def run() -> tuple[list[str], object]:
            order: list[str] = []
            room = asyncio.get_running_loop().create_future()  # the stream's queue has room again
            suspend_flow = asyncio.Event()

            async def callback() -> str:
                try:
                    if waits:
                        await room
                    order.append("handed over")
                    return "delivered"
                finally:
                    order.append("callback ended")

            loop = asyncio.get_running_loop()
            loop.call_soon(order.append, "another task ran")
            if suspend:
                loop.call_later(0.05, suspend_flow.set)  # a rebalance while the queue is full
            else:
                loop.call_later(0.05, room.set_result, None)
            results = await Consumer.wait_first(Service(), callback(), suspend_flow.wait())
            order.append("returned")
            await asyncio.sleep(0.01)  # let a cancelled hand-off end
            return order, results.results

        return asyncio.run(run())
    finally:
        faust_patches.install()


def test_a_hand_off_that_never_waits_returns_before_any_other_task_runs():
    order, results = hand_off(patched=True, waits=False, suspend=False)
    assert order[:3] == ["handed over", "callback ended", "returned"] and results == ["delivered"]


def test_released_faust_takes_a_turn_of_the_loop_per_record_which_is_the_cost_patched():
    order, results = hand_off(patched=False, waits=False, suspend=False)
    assert order[0] == "another task ran" and results[0] == "delivered"


def test_a_hand_off_that_waits_goes_on_from_where_it_stopped():
    order, results = hand_off(patched=True, waits=True, suspend=False)
    assert order == ["another task ran", "handed over", "callback ended", "returned"]
    assert results[0] == "delivered"


def test_a_waiting_hand_off_is_still_interrupted_by_a_flow_suspension():
    order, results = hand_off(patched=True, waits=True, suspend=True)
    assert "handed over" not in order and order.count("callback ended") == 1  # cancelled, cleaned up
    assert results == [True]  # the suspension won


# -- seek to committed: a partition never committed goes back to the start --------------


class _FakeAIOKafkaConsumer:
    """What the seek after a recovery meets: positions moved on by fetches Faust dropped."""

    def __init__(self, committed: dict) -> None:
        self.committed = committed
        self.to_beginning: list = []

    async def seek_to_committed(self) -> dict:
        return self.committed  # aiokafka seeks only where an offset above 0 was committed

    async def seek_to_beginning(self, *tps: object) -> None:
        self.to_beginning.extend(tps)


class _FakeConsumerThread:
    def __init__(self, consumer: _FakeAIOKafkaConsumer, acked_topics: set[str]) -> None:
        from types import SimpleNamespace

        self.consumer = consumer
        self.app = SimpleNamespace(
            topics=SimpleNamespace(acks_enabled_for=lambda topic: topic in acked_topics),
            conf=SimpleNamespace(consumer_auto_offset_reset="earliest"),
        )

    def _ensure_consumer(self) -> _FakeAIOKafkaConsumer:
        return self.consumer

    async def call_thread(self, fun, *args):
        return await fun(*args)


def rewound(patched: bool) -> list:
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
    from faust.types import TP

    never, zero, done, changelog = TP("in", 0), TP("in", 1), TP("in", 2), TP("app-table-changelog", 0)
    consumer = _FakeAIOKafkaConsumer({never: None, zero: 0, done: 42, changelog: None})
    (faust_patches.install if patched else faust_patches.uninstall)()
    try:
        thread = _FakeConsumerThread(consumer, acked_topics={"in"})
        committed = asyncio.run(AIOKafkaConsumerThread.seek_to_committed(thread))
        assert committed == consumer.committed
    finally:
        faust_patches.install()
    return consumer.to_beginning


def test_inputs_never_committed_are_rewound_to_the_start():
    from faust.types import TP

    # Not the committed one, and not a changelog (its recovery keeps its own offsets).
    assert rewound(patched=True) == [TP("in", 0), TP("in", 1)]


def test_faust_as_released_leaves_them_where_dropped_fetches_left_them():
    assert rewound(patched=False) == []


# -- recovery reads each changelog to the fetch high watermark (local broker) --------------


class _Response:
    def __init__(self, topics: list) -> None:
        self.topics = topics


class _Cluster:
    def leader_for_partition(self, tp) -> int:
        return 0


class _LocalBroker:
    """Answers as tansu does after batches of 10, 10, 10, 1 and 5 records (BROKER.md).

    ListOffsets: 32, the last batch's base offset + 1; fetch responses: high watermark 36.
    The first ``empty_answers`` fetches get no partitions (tansu, when the wait is too short).
    """

    cluster = _Cluster()

    def __init__(self, empty_answers: int = 0) -> None:
        self.empty_answers = empty_answers
        self.fetches: list[list] = []
        self._client = self  # stands for the aiokafka consumer and its client at once

    async def end_offsets(self, partitions) -> dict:
        return {tp: 32 for tp in partitions}

    async def send(self, node_id: int, request) -> _Response:
        self.fetches.append(request.topics)
        if self.empty_answers:
            self.empty_answers -= 1
            return _Response([])
        # partition, error, high watermark, last stable offset, log start, aborted, replica, records
        return _Response(
            [
                (topic, [(p, 0, 36, 36, 0, [], -1, b"") for p, _, _ in parts])
                for topic, parts in request.topics
            ]
        )

    async def force_metadata_update(self) -> None:
        return None


class _ConsumerThread:
    """Stands for Faust's AIOKafkaConsumerThread around one aiokafka consumer."""

    def __init__(self, broker: _LocalBroker) -> None:
        self.consumer = type("FaustConsumer", (), {"in_transaction": False})()
        self.broker = broker

    def _ensure_consumer(self) -> _LocalBroker:
        return self.broker


def recovery_highwaters(patched: bool, local: bool, broker: _LocalBroker) -> dict:
    """What Faust's recovery takes as each changelog partition's end (before its own -1)."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
    from faust.types import TP

    (faust_patches.install if patched else faust_patches.uninstall)()
    faust_patches.set_highwaters_from_fetch(local)
    try:
        tp = TP("bi-person_medical-changelog", 0)
        return dict(asyncio.run(AIOKafkaConsumerThread._highwaters(_ConsumerThread(broker), [tp])))
    finally:
        faust_patches.install()
        faust_patches.set_highwaters_from_fetch(False)


def test_local_recovery_reads_to_the_fetch_high_watermark(caplog):
    broker = _LocalBroker()
    with caplog.at_level("INFO", logger="stream_app.faust_patches"):
        assert list(recovery_highwaters(patched=True, local=True, broker=broker).values()) == [36]
    # one fetch, at the ListOffsets answer: never past the end, so valid on any broker
    assert broker.fetches == [[("bi-person_medical-changelog", [(0, 32, 1)])]]
    assert "reads 1 of 1 changelog partitions past the broker's ListOffsets answer" in caplog.text
    assert "(4 records more)" in caplog.text


def test_released_faust_reads_to_listoffsets_which_is_the_defect_patched():
    assert list(recovery_highwaters(patched=False, local=True, broker=_LocalBroker()).values()) == [32]


def test_real_kafka_keeps_listoffsets_and_sends_no_fetch():
    broker = _LocalBroker()
    assert list(recovery_highwaters(patched=True, local=False, broker=broker).values()) == [32]
    assert broker.fetches == []


def test_a_fetch_answered_without_the_partition_is_sent_again():
    broker = _LocalBroker(empty_answers=2)
    assert list(recovery_highwaters(patched=True, local=True, broker=broker).values()) == [36]
    assert len(broker.fetches) == 3


def recovery_reads_to_fetch_highwater(tmp_path, broker: str) -> bool:
    create_app(load({"STREAM_APP_BROKER": broker, "STREAM_APP_DATA_DIR": str(tmp_path)}))
    try:
        return faust_patches._highwaters_from_fetch
    finally:
        faust_patches.set_highwaters_from_fetch(False)


def test_local_broker_recovers_to_the_fetch_high_watermark(tmp_path):
    assert recovery_reads_to_fetch_highwater(tmp_path, "kafka://127.0.0.1:9092") is True


def test_real_kafka_recovers_as_faust_does(tmp_path):
    assert recovery_reads_to_fetch_highwater(tmp_path, "kafka://kafka-bootstrap.kafka.svc:9093") is False


# -- 9. the agents' raw schema hands over the bytes Faust's raw serializer would -----------


def test_raw_schema_events_carry_what_fausts_raw_decode_gives(tmp_path):
    from faust import Schema
    from faust.types import Message

    async def decoded() -> list[tuple[object, object, object, object]]:
        app, _ = create_app(
            load({"STREAM_APP_BROKER": "kafka://127.0.0.1:9092", "STREAM_APP_DATA_DIR": str(tmp_path)})
        )
        ours = faust_patches.RawSchema().compile(app)
        fausts = Schema(key_serializer="raw", value_serializer="raw").compile(app)
        found = []
        for key, value in ((b"p1", b'{"a": 1}'), (None, b"\xff\xfe"), (b"p2", None), (b"", b"")):
            message = Message("t", 3, 17, 1.5, 0, [("h", b"v")], key, value, None)
            for decode in (ours, fausts):
                event = await decode(message, propagate=True)
                found.append((event.key, event.value, event.headers, event.message))
            assert found[-1] == found[-2]
        return found

    found = asyncio.run(decoded())
    assert found[0][:2] == (b"p1", b'{"a": 1}')
    assert found[4][:2] == (b"p2", None)
