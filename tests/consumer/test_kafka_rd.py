"""The librdkafka edge (consumer/kafka_rd.py) against the real broker: what the router relies on.

- a newly assigned partition fetches nothing until ``start`` places it, then reads from exactly
  that offset (not the committed one), whatever the committed offset was;
- commits carry metadata, and ``positions_of`` reads them back with the end offsets;
- ``missing`` names a topic the cluster does not have; ``set_topics`` adds a topic without a
  restart and revokes nothing (cooperative);
- the producer's sends are awaited until acknowledged, to the key's or the given partition,
  headers kept;
- the subscriptions log (``KafkaLog``) creates its topic when missing (compacted, one
  partition), refuses one with several partitions, reads from the beginning (tombstones too)
  and then what is written later.

And without a broker: no confluent-kafka exception escapes the edge (every public method maps
``KafkaException`` to ``KafkaUnavailable``, the library's error kept as the cause; a method added
without a case here fails ``test_every_public_method_is_covered``), and the router's kafka-python
style settings all have a librdkafka name; an unreadable record stops the log's read.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import confluent_kafka as ck
import pytest
from cryptography.fernet import Fernet
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType

from consumer import kafka_rd
from consumer.kafka_rd import GroupReader, KafkaLog, Producer
from consumer.kafka_shared import KafkaUnavailable, PartitionRecords
from consumer.settings import Settings
from consumer.table import Change
from messaging_lib.errors import ConfigError
from messaging_lib.kafka_config import KafkaSettings
from tests.fixtures.kafka import KafkaHandle, RestartableKafkaHandle

pytestmark = pytest.mark.timeout(120)


async def until(check: Callable[[], object], what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class Assignments:
    """The rebalance hand-over, as the router's loop receives it."""

    def __init__(self) -> None:
        self.assigned: list[TopicPartition] = []
        self.revoked: list[TopicPartition] = []

    def on_assigned(self, tps: list[TopicPartition]) -> None:
        self.assigned += tps

    def on_revoked(self, tps: list[TopicPartition]) -> None:
        self.revoked += tps


def reader_of(kafka: KafkaHandle, group: str, seen: Assignments) -> GroupReader:
    return GroupReader(KafkaSettings(bootstrap_servers=(kafka.bootstrap,)), group, seen.on_assigned,
                       seen.on_revoked, fetch_max_wait_ms=100, allow_auto_create_topics=False,
                       session_timeout_ms=10_000, heartbeat_interval_ms=1_000)


async def poll_until(reader: GroupReader, check: Callable[[list[PartitionRecords]], bool], what: str,
                     timeout_s: float = 30) -> list[PartitionRecords]:
    got: list[PartitionRecords] = []
    deadline = time.monotonic() + timeout_s
    while not check(got):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        got += await reader.poll(0.1, 500)
    return got


@asynccontextmanager
async def holding_partition_0(kafka: KafkaHandle, topic: str) -> AsyncIterator[GroupReader]:
    """A reader of ``topic`` in a group of its own, once it holds partition 0 (paused until started)."""
    seen = Assignments()
    reader = reader_of(kafka, f"g-{topic}", seen)
    try:
        await reader.set_topics([topic])
        await poll_until(reader, lambda _: seen.assigned == [TopicPartition(topic, 0)], "the assignment")
        yield reader
    finally:
        await reader.close()


def offsets_of(batches: list[PartitionRecords]) -> list[int]:
    return [r.offset for b in batches for r in b.records]


def test_new_partitions_wait_for_start_and_read_from_its_offset(kafka: KafkaHandle) -> None:
    topic = kafka.create_topic("rd")
    producer = kafka.producer()
    for i in range(20):
        producer.send(topic, key=b"k", value=f"v{i}".encode(), headers=[("h", b"x")])
    producer.flush()
    producer.close()
    tp = TopicPartition(topic, 0)

    async def scenario() -> None:
        async with holding_partition_0(kafka, topic) as reader:
            # paused until placed: nothing arrives
            assert offsets_of([b for _ in range(5) for b in await reader.poll(0.1, 500)]) == []
            committed, ends = await reader.positions_of([tp])
            assert committed == {tp: None} and ends == {tp: 20}
            await reader.start({tp: 7})
            got = await poll_until(reader, lambda g: offsets_of(g)[-1:] == [19], "records 7..19")
            assert offsets_of(got) == list(range(7, 20))
            first = got[0].records[0]
            assert (first.key, first.value, first.headers) == (b"k", b"v7", [("h", b"x")])
            assert first.timestamp > 0
            await reader.commit({tp: (12, "catch-up state")})
            assert (await reader.positions_of([tp]))[0] == {tp: (12, "catch-up state")}

    asyncio.run(scenario())


def test_pause_stops_the_fetch_and_resume_goes_on_from_the_last_record_returned(kafka: KafkaHandle) -> None:
    topic = kafka.create_topic("rd")
    producer = kafka.producer()
    for i in range(10):
        producer.send(topic, value=f"v{i}".encode())
    producer.flush()
    tp = TopicPartition(topic, 0)

    async def scenario() -> None:
        async with holding_partition_0(kafka, topic) as reader:
            await reader.start({tp: 0})
            got = await poll_until(reader, lambda g: offsets_of(g)[-1:] == [9], "records 0..9")
            await reader.pause([tp], True)
            for i in range(10, 20):
                producer.send(topic, value=f"v{i}".encode())
            producer.flush()
            assert offsets_of([b for _ in range(5) for b in await reader.poll(0.1, 500)]) == []
            await reader.pause([tp], False)
            got += await poll_until(reader, lambda g: offsets_of(g)[-1:] == [19], "records 10..19")
            assert offsets_of(got) == list(range(20))
            producer.close()

    asyncio.run(scenario())


def test_a_topic_added_is_assigned_without_revoking_the_others_and_a_missing_one_is_named(
        kafka: KafkaHandle) -> None:
    first, second = kafka.create_topic("rd"), kafka.create_topic("rd")

    async def scenario() -> None:
        seen = Assignments()
        reader = reader_of(kafka, f"g-{first}", seen)
        try:
            await reader.set_topics([first])
            await poll_until(reader, lambda _: seen.assigned == [TopicPartition(first, 0)], "the first topic")
            await reader.set_topics([first, second])
            await poll_until(reader, lambda _: TopicPartition(second, 0) in seen.assigned, "the second topic")
            assert seen.revoked == []
            assert await reader.missing([first, second, "no-such-topic-rd"]) == {"no-such-topic-rd"}
        finally:
            await reader.close()

    asyncio.run(scenario())


def test_sends_are_acknowledged_to_the_keys_or_the_given_partition(kafka: KafkaHandle) -> None:
    topic, keyed = kafka.create_topic("rd", partitions=3), kafka.create_topic("rd", partitions=3)

    async def scenario() -> None:
        producer = Producer(KafkaSettings(bootstrap_servers=(kafka.bootstrap,)))
        try:
            assert await producer.send(topic, b"a", partition=2) == (2, 0)
            assert await producer.send(topic, b"b", partition=2, headers=[("h", b"1")]) == (2, 1)
            partition, _ = await producer.send(keyed, b"c", key=b"same")
            assert (await producer.send(keyed, b"d", key=b"same"))[0] == partition
        finally:
            producer.close()
        read = [(m.partition, m.offset, m.value, m.headers) for m in kafka.read_all(topic, timeout_ms=2000)]
        assert read == [(2, 0, b"a", []), (2, 1, b"b", [("h", b"1")])]

    asyncio.run(scenario())


def test_a_key_goes_to_the_partition_kafka_python_and_java_give_it(kafka: KafkaHandle) -> None:
    """Envelopes are keyed by trigger, and external producers (kafka-python, Java, ``produce``)
    write envelopes of the same triggers: one partition per key keeps a trigger's order."""
    topic = kafka.create_topic("rd", partitions=8)
    keys = [f"/guest/trigger-{i}".encode() for i in range(24)]
    reference = kafka.producer()
    theirs = [reference.send(topic, b"x", key=key).get(timeout=30).partition for key in keys]
    reference.close()

    async def scenario() -> list[int]:
        producer = Producer(KafkaSettings(bootstrap_servers=(kafka.bootstrap,)))
        try:
            return [(await producer.send(topic, b"x", key=key))[0] for key in keys]
        finally:
            producer.close()

    assert asyncio.run(scenario()) == theirs
    assert len(set(theirs)) > 1

def test_the_subscriptions_log_creates_its_topic_compacted_and_refuses_several_partitions(
        kafka: KafkaHandle) -> None:
    settings = KafkaSettings(bootstrap_servers=(kafka.bootstrap,))
    name = f"subscriptions-{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        log = KafkaLog(settings, name, "router-g")
        assert await log.open() == 0
        await log.close()
        with pytest.raises(ConfigError) as refused:
            await KafkaLog(settings, kafka.create_topic("two", partitions=2), "router-g").open()
        assert refused.value.variable == "SUBSCRIPTIONS_TOPIC"
    asyncio.run(scenario())
    admin = kafka.admin()
    try:
        found = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
    finally:
        admin.close()
    assert "cleanup.policy" in json.dumps(found) and "compact" in json.dumps(found)
    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap)
    assert consumer.partitions_for_topic(name) == {0}
    consumer.close()


async def read_until(log: KafkaLog, count: int, what: str, timeout_s: float = 30) -> list[Change]:
    got: list[Change] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {len(got)} of {count}")
        got += await log.read(0.1)
    return got


def test_the_subscriptions_log_reads_from_the_beginning_then_what_comes_later(kafka: KafkaHandle) -> None:
    topic = kafka.create_topic("subscriptions", config={"cleanup.policy": "compact"})
    written = [(b"k%d" % (i % 7), b"v%d" % i) for i in range(300)] + [(b"k1", None)]  # a tombstone last
    producer = kafka.producer()
    for key, value in written:
        producer.send(topic, key=key, value=value)
    producer.flush()

    async def scenario() -> None:
        log = KafkaLog(KafkaSettings(bootstrap_servers=(kafka.bootstrap,)), topic, "router-g")
        try:
            assert await log.open() == len(written)
            got = await read_until(log, len(written), "the records present at open")
            assert got == [Change(offset, key, value) for offset, (key, value) in enumerate(written)]
            await asyncio.to_thread(lambda: producer.send(topic, key=b"k9", value=b"later").get(timeout=10))
            assert await read_until(log, 1, "a record written later") == [Change(len(written), b"k9", b"later")]
        finally:
            await log.close()
    try:
        asyncio.run(scenario())
    finally:
        producer.close()


# --- without a broker ------------------------------------------------------------------------------

SETTINGS = KafkaSettings(bootstrap_servers=("127.0.0.1:1",))
TP = TopicPartition("t", 0)


def _error() -> ck.KafkaException:
    return ck.KafkaException(ck.KafkaError(ck.KafkaError._TRANSPORT, "broker down"))


class Raising:
    """A confluent-kafka client whose every method raises ``KafkaException``."""

    def __init__(self, *_: Any, **__: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def call(*_: Any, **__: Any) -> Any:
            raise _error()
        return call


def _nothing(_: list[TopicPartition]) -> None:
    pass


def raising_reader() -> GroupReader:
    edge = GroupReader(SETTINGS, "g", _nothing, _nothing)
    edge._consumer = Raising()  # type: ignore[assignment]
    edge._assigned = {TP}
    edge.topics = frozenset({"t"})
    return edge


def raising_producer() -> Producer:
    edge = Producer.__new__(Producer)
    edge._producer = Raising()  # type: ignore[assignment]
    edge._stopping = kafka_rd.threading.Event()
    edge._reports = kafka_rd.threading.Thread(target=lambda: None)
    edge._reports.start()
    return edge


def raising_log() -> KafkaLog:
    edge = KafkaLog(SETTINGS, "subs", "g")
    edge._consumer = Raising()  # type: ignore[assignment]
    return edge


CASES: dict[tuple[type, str], Callable[[], Awaitable[object] | object]] = {
    (GroupReader, "set_topics"): lambda: GroupReader(SETTINGS, "g", _nothing, _nothing).set_topics(["t"]),
    (GroupReader, "refresh_metadata"): lambda: raising_reader().refresh_metadata(),
    (GroupReader, "missing"): lambda: raising_reader().missing(["t"]),
    (GroupReader, "poll"): lambda: raising_reader().poll(0.01, 10),
    (GroupReader, "positions_of"): lambda: raising_reader().positions_of([TP]),
    (GroupReader, "start"): lambda: raising_reader().start({TP: 1}),
    (GroupReader, "seek"): lambda: raising_reader().seek({TP: 1}),
    (GroupReader, "pause"): lambda: raising_reader().pause([TP], True),
    (GroupReader, "commit"): lambda: raising_reader().commit({TP: (1, "")}),
    (GroupReader, "close"): lambda: raising_reader().close(),
    (Producer, "__init__"): lambda: Producer(SETTINGS),
    (Producer, "send"): lambda: raising_producer().send("t", b"v"),
    (Producer, "close"): lambda: raising_producer().close(),
    (KafkaLog, "open"): lambda: KafkaLog(SETTINGS, "subs", "g").open(),
    (KafkaLog, "read"): lambda: raising_log().read(0.01),
    (KafkaLog, "close"): lambda: raising_log().close(),
}


@pytest.mark.parametrize("case", list(CASES), ids=lambda c: f"{c[0].__name__}.{c[1]}")
def test_library_errors_come_out_as_kafka_unavailable(case: tuple[type, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_rd.ck, "Consumer", Raising)
    monkeypatch.setattr(kafka_rd.ck, "Producer", lambda *_: (_ for _ in ()).throw(_error()))

    async def scenario() -> None:
        with pytest.raises(KafkaUnavailable) as info:
            result = CASES[case]()
            if inspect.isawaitable(result):
                await result
        assert isinstance(info.value.__cause__, ck.KafkaException)  # the library's error is kept as the cause

    asyncio.run(scenario())


def test_every_public_method_is_covered() -> None:
    public = {(cls, name) for cls in (GroupReader, Producer, KafkaLog) for name, member in vars(cls).items()
              if callable(member) and (not name.startswith("_") or name == "__init__")}
    public -= {(GroupReader, "__init__"), (KafkaLog, "__init__")}  # no I/O
    assert public == set(CASES)


def test_a_failed_delivery_comes_out_as_kafka_unavailable() -> None:
    class Undelivered:
        def produce(self, *_: Any, on_delivery: Callable[..., None], **__: Any) -> None:
            on_delivery(ck.KafkaError(ck.KafkaError._MSG_TIMED_OUT), None)

    async def scenario() -> None:
        edge = raising_producer()
        edge._producer = Undelivered()  # type: ignore[assignment]
        with pytest.raises(KafkaUnavailable, match="send to t failed"):
            await edge.send("t", b"v")

    asyncio.run(scenario())


def test_a_fatal_consumer_error_is_raised_and_other_events_are_skipped() -> None:
    class Event:
        def __init__(self, fatal: bool) -> None:
            self._error = ck.KafkaError(ck.KafkaError._FENCED if fatal else ck.KafkaError.UNKNOWN_TOPIC_OR_PART,
                                        fatal=fatal)

        def error(self) -> ck.KafkaError:
            return self._error

    assert kafka_rd._batches([Event(fatal=False)]) == []  # type: ignore[list-item]
    with pytest.raises(ck.KafkaException):
        kafka_rd._batches([Event(fatal=True)])  # type: ignore[list-item]


def test_every_setting_the_router_passes_has_a_librdkafka_name() -> None:
    """What the router gives its reader (consumer/router.py) with static membership on."""
    settings = Settings(roles="router", sealing_keys=Fernet.generate_key().decode(), consumer_instance_id="pod-1")
    config = kafka_rd.group_config("g", {"fetch_max_wait_ms": 100, "max_partition_fetch_bytes": 4 << 20,
                                         "allow_auto_create_topics": False, **settings.membership("router")})
    assert config["group.instance.id"] == "pod-1-router"
    assert config["partition.assignment.strategy"] == "cooperative-sticky"
    assert config["enable.auto.commit"] is False
    assert config["session.timeout.ms"] == settings.kafka_session_timeout_ms
    with pytest.raises(ValueError, match="no librdkafka setting"):
        kafka_rd.group_config("g", {"no_such_setting": 1})


def test_large_buffers_are_kept_on_glibc_and_the_tuning_is_skipped_elsewhere(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert kafka_rd.keep_large_buffers()  # the test machines and the image run glibc

    def no_libc(_: object) -> Any:
        raise OSError("no such library")

    monkeypatch.setattr(kafka_rd.ctypes, "CDLL", no_libc)
    assert not kafka_rd.keep_large_buffers()


def test_the_reader_and_the_producer_come_back_after_a_broker_restart(restartable_kafka: RestartableKafkaHandle
                                                                       ) -> None:
    """During an outage a commit fails (KafkaUnavailable, within the request timeout) instead of
    hanging the router's loop. An outage longer than the session timeout costs the partitions
    (librdkafka counts the session on its side: revoked, then assigned again once the broker is
    back, and placed again as the router does, from the commit); the same reader then reads what
    follows, commits land and sends are acknowledged again."""
    broker = restartable_kafka
    topic = broker.create_topic("rd")
    tp = TopicPartition(topic, 0)
    settings = KafkaSettings(bootstrap_servers=(broker.bootstrap,))

    async def scenario() -> None:
        seen = Assignments()
        reader = GroupReader(settings, f"g-{topic}", seen.on_assigned, seen.on_revoked, fetch_max_wait_ms=100,
                             session_timeout_ms=10_000, heartbeat_interval_ms=1_000, request_timeout_ms=5_000,
                             reconnect_backoff_max_ms=1_000)
        producer = Producer(settings)
        try:
            for i in range(5):
                await producer.send(topic, f"v{i}".encode())
            await reader.set_topics([topic])
            await poll_until(reader, lambda _: seen.assigned == [tp], "the assignment")
            await reader.start({tp: 0})
            await poll_until(reader, lambda g: offsets_of(g)[-1:] == [4], "records 0..4")
            await reader.commit({tp: (5, "before")})
            await asyncio.to_thread(broker.stop)
            started = time.monotonic()
            with pytest.raises(KafkaUnavailable):
                await reader.commit({tp: (5, "during")})
            assert time.monotonic() - started < 30
            await reader.poll(0.5, 100)
            await asyncio.to_thread(broker.restart)
            sent = asyncio.ensure_future(producer.send(topic, b"v5"))
            got: list[PartitionRecords] = []
            placed = 1
            deadline = time.monotonic() + 60
            while offsets_of(got)[-1:] != [5]:
                assert time.monotonic() < deadline, "record 5 did not arrive after the restart"
                got += await reader.poll(0.2, 100)
                if len(seen.assigned) > placed:  # assigned again: placed from its commit
                    placed = len(seen.assigned)
                    committed, _ = await reader.positions_of([tp])
                    assert committed == {tp: (5, "before")}
                    await reader.start({tp: 5})
            assert offsets_of(got) == [5]
            assert await sent == (0, 5)
            await until_landed(reader, {tp: (6, "after")})
            assert (await reader.positions_of([tp]))[0] == {tp: (6, "after")}
        finally:
            await reader.close()
            producer.close()

    asyncio.run(scenario())


async def until_landed(reader: GroupReader, offsets: dict[TopicPartition, tuple[int, str]]) -> None:
    """Commit until the broker takes it (as the router does after an outage)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            await reader.commit(offsets)
            return
        except KafkaUnavailable:
            if time.monotonic() > deadline:
                raise
            await reader.poll(0.2, 100)


def test_librdkafka_lines_of_one_kind_are_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    """A broker outage makes every broker thread log each failed reconnect."""
    logger = logging.getLogger("test.librdkafka")
    logger.addFilter(kafka_rd._OncePerInterval(60))
    with caplog.at_level(logging.INFO, logger="test.librdkafka"):
        for _ in range(50):
            logger.error("%s [%s] %s", "FAIL", "rdkafka#consumer-1", "Connect failed: Connection refused")
        logger.warning("%s [%s] %s", "SESSTMOUT", "rdkafka#consumer-1", "session timed out")
    assert [r.args[0] for r in caplog.records] == ["FAIL", "SESSTMOUT"]  # type: ignore[index]


class _Event:
    """A consumer event as ``consume`` returns it among records."""

    def __init__(self, code: int) -> None:
        self._error = ck.KafkaError(code)

    def error(self) -> ck.KafkaError:
        return self._error


def test_an_unreadable_record_stops_the_log_and_a_broker_event_is_skipped() -> None:
    class Fetching:
        def __init__(self, events: list[_Event]) -> None:
            self.events = events

        def consume(self, *_: Any) -> list[_Event]:
            return self.events

        def close(self) -> None:
            pass

    async def scenario() -> None:
        log = KafkaLog(SETTINGS, "subs", "g")
        log._consumer = Fetching([_Event(ck.KafkaError._TRANSPORT)])  # type: ignore[assignment]
        assert await log.read(0.01) == []
        for code in (ck.KafkaError._BAD_MSG, ck.KafkaError.TOPIC_AUTHORIZATION_FAILED):
            log._consumer = Fetching([_Event(code)])  # type: ignore[assignment]
            with pytest.raises(KafkaUnavailable, match="reading subs failed"):
                await log.read(0.01)
        await log.close()
    asyncio.run(scenario())


class _Queue:
    """A consumer's fetched queue as ``_take`` sees it: ``consume`` returns at most n of what is
    queued now (the real one would wait out its timeout for n), ``poll`` the next, waiting for it."""

    def __init__(self, queued: list[str], arriving: list[str] | None = None) -> None:
        self.queued, self.arriving = queued, arriving or []
        self.calls: list[tuple[str, int, float]] = []

    def consume(self, n: int, timeout: float) -> list[str]:
        self.calls.append(("consume", n, timeout))
        taken, self.queued = self.queued[:n], self.queued[n:]
        return taken

    def poll(self, timeout: float) -> str | None:
        self.calls.append(("poll", 1, timeout))
        self.queued += self.arriving
        self.arriving = []
        return self.queued.pop(0) if self.queued else None


def test_take_returns_what_is_fetched_without_waiting_and_else_waits_for_the_first_record_only() -> None:
    queued = _Queue(["a", "b", "c"])
    assert kafka_rd._take(queued, 2, 0.1) == ["a", "b"]
    assert queued.calls == [("consume", 2, 0)]  # never a wait while records are there

    arriving = _Queue([], arriving=["x", "y", "z"])
    assert kafka_rd._take(arriving, 10, 0.1) == ["x", "y", "z"]
    assert arriving.calls == [("consume", 10, 0), ("poll", 1, 0.1), ("consume", 9, 0)]

    one = _Queue([], arriving=["x", "y"])
    assert kafka_rd._take(one, 1, 0.1) == ["x"]

    assert kafka_rd._take(_Queue([]), 10, 0.1) == []


def test_the_logs_end_offset_is_asked_again_while_a_new_topic_has_no_leader() -> None:
    class Watermarks:
        def __init__(self, refusals: list[int]) -> None:
            self.refusals, self.asked = refusals, 0

        def get_watermark_offsets(self, *_: Any, **__: Any) -> tuple[int, int]:
            self.asked += 1
            if self.refusals:
                raise ck.KafkaException(ck.KafkaError(self.refusals.pop(0)))
            return 0, 7

    tp = ck.TopicPartition("subs", 0)
    slept: list[float] = []
    leaderless = Watermarks([ck.KafkaError.NOT_LEADER_FOR_PARTITION, ck.KafkaError.LEADER_NOT_AVAILABLE])
    assert kafka_rd._end_offset(leaderless, tp, time.monotonic() + 60, slept.append) == 7  # type: ignore[arg-type]
    assert leaderless.asked == 3 and len(slept) == 2

    late = Watermarks([ck.KafkaError.NOT_LEADER_FOR_PARTITION])  # past the deadline: the error stands
    with pytest.raises(ck.KafkaException, match="NOT_LEADER"):
        kafka_rd._end_offset(late, tp, time.monotonic() - 1, slept.append)  # type: ignore[arg-type]
    denied = Watermarks([ck.KafkaError.TOPIC_AUTHORIZATION_FAILED])  # not a leader question: at once
    with pytest.raises(ck.KafkaException, match="AUTHORIZATION"):
        kafka_rd._end_offset(denied, tp, time.monotonic() + 60, slept.append)  # type: ignore[arg-type]
    assert denied.asked == 1
