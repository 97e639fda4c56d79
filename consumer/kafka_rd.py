"""The router's Kafka edge on librdkafka (confluent-kafka): its group reader, the subscriptions log
and the shared producer.

Why a second client: the router's whole job is fetching records and writing envelopes, and
kafka-python decodes every fetched record in Python, which took about half of the router's CPU
(bench/router_bench.py with py-spy: as much as a plain kafka-python consumer spends in all), so the
router could not reach half a plain consumer's rate however cheap routing became. librdkafka
fetches, decodes and produces in C on its own threads. The firer stays on kafka-python
(consumer/kafka_edge.py): its membership logic relies on kafka-python's internals.

- ``GroupReader``: the subscribed topics in one consumer group, cooperative-sticky (KIP-429:
  adding a topic revokes nothing). librdkafka calls the rebalance callbacks inside ``consume``, on
  this reader's thread; they assign or unassign themselves (so a new partition is paused before
  its first fetch, which waits for its committed offset) and only hand over to the owner. New
  partitions stay paused until ``start`` positions them. Every call runs on that one thread
  (``ClientThread``), so the callbacks and the calls never interleave. librdkafka refreshes the
  subscribed topics' metadata itself (every 10 s here) and rejoins when their partitions change;
  ``refresh_metadata`` does it at once.
- ``KafkaLog``: the subscriptions topic as a ``table.LogSource`` (partition 0 assigned directly,
  no group joined, read from the beginning; created when missing, refused with several
  partitions). librdkafka reads a record for ~1.45 CPU µs, against ~9 for kafka-python's own
  path: a million subscriptions load in a few CPU seconds less.
- ``Producer``: the process's one producer (the router's envelopes, dead letters and statuses,
  the firer's park writes, dead letters and statuses) whose sends are awaited until acknowledged
  (acks=all, idempotent, as kafka-python's defaults were); a thread serves its delivery reports.

librdkafka's own log lines go to the ``consumer.kafka.librdkafka`` logger (served by the calls
above). Connection settings come from ``KafkaSettings.librdkafka_config`` (messaging_lib), the
router's group settings, given under kafka-python's names, from ``group_config``.

Errors: ``_mapped`` is the one place a confluent-kafka error becomes ``KafkaUnavailable``;
every public method goes through it, so nothing above knows librdkafka's error codes.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any

import confluent_kafka as ck
import confluent_kafka.admin as ck_admin
from kafka import TopicPartition

from consumer.kafka_shared import (
    ClientThread,
    KafkaUnavailable,
    Offsets,
    PartitionRecords,
    RebalanceCallback,
    settle,
)
from consumer.table import Change
from messaging_lib import topics
from messaging_lib.errors import ConfigError
from messaging_lib.kafka_config import KafkaSettings

log = logging.getLogger("consumer.kafka")
LIBRDKAFKA_LOG_INTERVAL_S = 10.0  # librdkafka's lines of one kind and level: at most one per interval


class _OncePerInterval(logging.Filter):
    """librdkafka logs every failed reconnect of each of its broker threads, about ten lines a
    second through a broker outage: one line per kind (its facility, e.g. FAIL) and level per
    interval is enough to see what happens."""

    def __init__(self, interval_s: float) -> None:
        super().__init__()
        self._interval_s = interval_s
        self._last: dict[tuple[int, object], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        kind = record.args[0] if isinstance(record.args, tuple) and record.args else record.msg
        now = time.monotonic()
        if now - self._last.get((record.levelno, kind), -self._interval_s) < self._interval_s:
            return False
        self._last[(record.levelno, kind)] = now
        return True


_librdkafka_log = logging.getLogger("consumer.kafka.librdkafka")  # its own log lines, served by poll
_librdkafka_log.addFilter(_OncePerInterval(LIBRDKAFKA_LOG_INTERVAL_S))


@contextmanager
def _mapped(what: str) -> Iterator[None]:
    """Turn a confluent-kafka error raised inside into ``KafkaUnavailable`` (the cause kept)."""
    try:
        yield
    except ck.KafkaException as e:
        raise KafkaUnavailable(f"{what}: {e}") from e


class _Rec:
    """One fetched record as the router reads it (``PartitionRecords``): plain attributes, typed as
    confluent-kafka types a ``Message``'s (a record, unlike an error event, has them all)."""

    __slots__ = ("headers", "key", "offset", "timestamp", "value")

    def __init__(self, offset: int | None, key: str | bytes | None, value: str | bytes | None,
                 headers: Any, timestamp: int) -> None:
        self.offset, self.key, self.value, self.headers, self.timestamp = offset, key, value, headers, timestamp


def _tp(p: ck.TopicPartition) -> TopicPartition:
    return TopicPartition(p.topic, p.partition)


def _ck(tp: TopicPartition, offset: int = ck.OFFSET_INVALID) -> ck.TopicPartition:
    return ck.TopicPartition(tp.topic, tp.partition, offset)


class GroupReader:
    """The subscribed topics, in one consumer group with cooperative rebalancing (adding a topic
    revokes nothing). ``on_assigned``/``on_revoked`` are called on the reader's thread and must
    only hand over; assigned partitions stay paused until ``start`` positions them.
    ``set_topics`` re-subscribes without a restart; with no topic at all the consumer is closed
    and the group left, and a new one is made when topics come back."""

    def __init__(self, settings: KafkaSettings, group_id: str, on_assigned: RebalanceCallback,
                 on_revoked: RebalanceCallback, **config: Any) -> None:
        self.on_assigned, self.on_revoked = on_assigned, on_revoked
        self._config = settings.librdkafka_config() | group_config(group_id, config) | {"logger": _librdkafka_log}
        self._thread = ClientThread(f"kafka-{group_id}", _mapped)
        self._consumer: ck.Consumer | None = None
        self._assigned: set[TopicPartition] = set()
        self.topics: frozenset[str] = frozenset()

    # --- rebalance callbacks: on this reader's thread, inside consume ---

    def _assign(self, consumer: ck.Consumer, partitions: list[ck.TopicPartition]) -> None:
        consumer.incremental_assign(partitions)
        if partitions:
            consumer.pause(partitions)
            tps = [_tp(p) for p in partitions]
            self._assigned.update(tps)
            self.on_assigned(tps)

    def _revoke(self, consumer: ck.Consumer, partitions: list[ck.TopicPartition]) -> None:
        tps = [_tp(p) for p in partitions]
        self._assigned.difference_update(tps)
        if tps:
            self.on_revoked(tps)
        consumer.incremental_unassign(partitions)

    # --- what the router calls ---

    async def set_topics(self, topic_names: Collection[str]) -> None:
        """Subscribe to exactly ``topic_names``; none closes the consumer (the caller commits first)."""
        wanted = frozenset(topic_names)

        def apply() -> None:
            if not wanted:
                self._close()
                return
            if self._consumer is None:
                self._consumer = ck.Consumer(self._config)
            self._consumer.subscribe(sorted(wanted), on_assign=self._assign, on_revoke=self._revoke,
                                     on_lost=self._revoke)
        if wanted != self.topics:
            await self._thread.call("subscribing failed", apply)
            self.topics = wanted

    def _close(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            consumer.close()
            self._assigned.clear()

    async def refresh_metadata(self) -> None:
        """Fetch the cluster's metadata now: a leader that assigned without some topic's
        partitions sees them change, and rejoins."""
        def refresh() -> None:
            if self._consumer is not None:
                self._consumer.list_topics(timeout=10)
        await self._thread.call("metadata refresh failed", refresh)

    async def missing(self, topic_names: Collection[str]) -> frozenset[str]:
        """Which of ``topic_names`` the cluster does not list for this client now: deleted, never
        created, or not readable (Kafka lists only the topics the principal may describe)."""
        def find() -> frozenset[str]:
            if self._consumer is None:
                return frozenset()
            listed = self._consumer.list_topics(timeout=10).topics
            return frozenset(t for t in topic_names if t not in listed or listed[t].error is not None)
        return await self._thread.call("listing topics failed", find)

    async def poll(self, timeout_s: float, max_records: int) -> list[PartitionRecords]:
        """One batch per partition run, handed over as fetched (see ``PartitionRecords``)."""
        def poll() -> list[PartitionRecords]:
            if self._consumer is None:
                return []
            return _batches(_take(self._consumer, max_records, timeout_s))
        if self._consumer is None:
            await asyncio.sleep(timeout_s)
            return []
        return await self._thread.call("poll failed", poll)

    async def positions_of(self, partitions: list[TopicPartition]
                           ) -> tuple[dict[TopicPartition, tuple[int, str] | None], dict[TopicPartition, int]]:
        """Committed offset and metadata (None if never committed), and end offset, per partition."""
        def fetch() -> tuple[dict[TopicPartition, tuple[int, str] | None], dict[TopicPartition, int]]:
            assert self._consumer is not None
            committed: dict[TopicPartition, tuple[int, str] | None] = {}
            for p in self._consumer.committed([_ck(tp) for tp in partitions], timeout=10):
                _raise_if(p.error, "committed offset")
                committed[_tp(p)] = None if p.offset < 0 else (p.offset, p.metadata or "")
            ends = {tp: self._consumer.get_watermark_offsets(_ck(tp), timeout=10, cached=False)[1]
                    for tp in partitions}
            return committed, ends
        return await self._thread.call("fetching positions failed", fetch)

    async def start(self, positions: dict[TopicPartition, int]) -> None:
        """Seek newly assigned partitions and let them be fetched."""
        def apply() -> None:
            assert self._consumer is not None
            mine = [_ck(tp, o) for tp, o in positions.items() if tp in self._assigned]
            for p in mine:
                _seek(self._consumer, p)
            if mine:
                self._consumer.resume(mine)
        if positions and self._consumer is not None:
            await self._thread.call("positioning failed", apply)

    async def seek(self, positions: dict[TopicPartition, int]) -> None:
        def apply() -> None:
            assert self._consumer is not None
            for tp, offset in positions.items():
                if tp in self._assigned:
                    _seek(self._consumer, _ck(tp, offset))
        if positions and self._consumer is not None:
            await self._thread.call("seek failed", apply)

    async def pause(self, partitions: Collection[TopicPartition], pause: bool) -> None:
        def apply() -> None:
            if self._consumer is None:
                return
            owned = [_ck(tp) for tp in partitions if tp in self._assigned]
            if owned and pause:
                self._consumer.pause(owned)
            elif owned:
                self._consumer.resume(owned)
        if partitions:
            await self._thread.call("pause failed", apply)

    async def commit(self, offsets: Offsets) -> None:
        def commit() -> None:
            assert self._consumer is not None
            done = self._consumer.commit(offsets=[ck.TopicPartition(tp.topic, tp.partition, o, meta)
                                                  for tp, (o, meta) in offsets.items()], asynchronous=False)
            for p in done or ():
                _raise_if(p.error, "commit")
        if offsets and self._consumer is not None:
            await self._thread.call("commit failed", commit)

    async def close(self) -> None:
        try:
            await self.set_topics(())
        finally:
            self._thread.shutdown()


SEEK_WAIT_S = 5.0  # how long a seek waits for a just-assigned partition's fetcher to start


def _seek(consumer: ck.Consumer, position: ck.TopicPartition) -> None:
    """librdkafka refuses a seek (``_STATE``) until the partition's fetcher has started, which it
    does once it has the committed offset of a just-assigned partition (a request of its own, in
    the background): the router's ``positions_of`` usually takes longer, but not always."""
    deadline = time.monotonic() + SEEK_WAIT_S
    while True:
        try:
            consumer.seek(position)
            return
        except ck.KafkaException as e:
            if e.args[0].code() != ck.KafkaError._STATE or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _take(consumer: ck.Consumer, most: int, timeout_s: float) -> list[ck.Message]:
    """What is fetched now, up to ``most``; when nothing is, wait at most ``timeout_s`` for the
    first record and return it with whatever came along. Not ``consume(most, timeout)`` alone:
    librdkafka's batch call waits until it has ``most`` or the timeout passed, so every poll took
    its whole timeout, and a subscription change read meanwhile (pause, delete) was applied
    after records produced later had been routed under the old plan."""
    taken = consumer.consume(most, 0)
    if taken:
        return taken
    first = consumer.poll(timeout_s)
    if first is None or most == 1:
        return [] if first is None else [first]
    return [first, *consumer.consume(most - 1, 0)]


def _raise_if(error: ck.KafkaError | None, what: str) -> None:
    if error is not None:
        raise ck.KafkaException(error)


def _batches(messages: list[ck.Message]) -> list[PartitionRecords]:
    """Runs of one partition's records as ``PartitionRecords`` (librdkafka returns them partition
    by partition). Error events are logged, not raised: the records around them are already
    consumed, and a subscribed topic that is gone or unreadable shows up in ``missing``, which the
    router checks. A fatal error (the client cannot go on, e.g. a static member fenced by another
    with its instance id) is raised, after nothing was committed for what it returned."""
    out: list[PartitionRecords] = []
    current: list[_Rec] = []
    topic: str | None = ""
    partition: int | None = -1
    for m in messages:
        if (error := m.error()) is not None:
            if error.fatal():
                raise ck.KafkaException(error)
            _log_event(error)
            continue
        if m.partition() != partition or m.topic() != topic:
            if current:
                out.append(_partition_records(topic, partition, current))
            current, topic, partition = [], m.topic(), m.partition()
        current.append(_Rec(m.offset(), m.key(), m.value(), m.headers(), m.timestamp()[1]))
    if current:
        out.append(_partition_records(topic, partition, current))
    return out


def _partition_records(topic: str | None, partition: int | None, records: list[_Rec]) -> PartitionRecords:
    assert topic is not None and partition is not None  # a record has both
    return PartitionRecords(topic, partition, records)


EVENT_LOG_INTERVAL_S = 60.0  # the same consumer event is logged at most once per interval
_events_logged: dict[str, float] = {}


def _log_event(error: ck.KafkaError) -> None:
    """A consumer event (a topic unknown or unreadable, a broker down: librdkafka retries), once
    per interval per kind."""
    now = time.monotonic()
    kind = error.name()
    if now - _events_logged.get(kind, -EVENT_LOG_INTERVAL_S) >= EVENT_LOG_INTERVAL_S:
        _events_logged[kind] = now
        log.warning("consumer event", extra={"fields": {"error": kind, "detail": error.str()}})


PREFETCH_KB = 16 * 1024  # records fetched ahead (librdkafka's default: 64 MB); a poll takes 2,000


# kafka-python's keyword names (what the router passes, Settings.membership) -> librdkafka's
_CONSUMER_KEYS = {
    "session_timeout_ms": "session.timeout.ms",
    "heartbeat_interval_ms": "heartbeat.interval.ms",
    "max_poll_interval_ms": "max.poll.interval.ms",
    "request_timeout_ms": "socket.timeout.ms",
    "reconnect_backoff_max_ms": "reconnect.backoff.max.ms",
    "group_instance_id": "group.instance.id",
    "fetch_max_wait_ms": "fetch.wait.max.ms",
    "max_partition_fetch_bytes": "max.partition.fetch.bytes",
    "allow_auto_create_topics": "allow.auto.create.topics",
}


def group_config(group_id: str, config: dict[str, Any]) -> dict[str, Any]:
    """librdkafka settings of the router's group consumer from kafka-python's keyword names."""
    unknown = set(config) - set(_CONSUMER_KEYS)
    if unknown:
        raise ValueError(f"no librdkafka setting for {sorted(unknown)}")
    return {"group.id": group_id, "enable.auto.commit": False, "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest", "partition.assignment.strategy": "cooperative-sticky",
            "topic.metadata.refresh.interval.ms": 10_000,
            "isolation.level": "read_uncommitted",  # as kafka-python reads (librdkafka's default: committed)
            "check.crcs": True,  # as kafka-python does (librdkafka's default: not checked); CRC32C in C
            "queued.max.messages.kbytes": PREFETCH_KB} | {
        _CONSUMER_KEYS[k]: v for k, v in config.items()}


# glibc's mallopt parameters (malloc.h) and the values set: see keep_large_buffers
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 16 * 1024 * 1024  # above the largest request (message.max.bytes, 4 MB)
TRIM_THRESHOLD_BYTES = 64 * 1024 * 1024  # free heap kept for the next envelopes


def keep_large_buffers() -> bool:
    """Serve buffers up to 16 MB from the heap and keep up to 64 MB of it free, so an envelope's
    copies reuse memory that is already mapped; True when applied (glibc), else nothing is done.

    Why: each envelope (up to a megabyte) is copied whole several times on its way out (the
    payload's join, the client's message buffer and its batch, the request), each into a
    fresh allocation. glibc serves those from mmap until its adaptive threshold has risen, and
    gives trimmed heap back, so every copy faulted in every page of its buffer: measured, 2.4 ms
    against 0.3 ms per envelope for those copies, and about 40 % of the router's throughput with
    10 subscriptions (bench/router_bench.py, with kafka-python's producer; librdkafka's copy is a
    malloc too). Process-wide and harmless for small allocations;
    the RSS it may keep is bounded by the trim threshold."""
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt): its allocator as it is
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))


class Producer:
    """A shared producer whose sends can be awaited (librdkafka: thread-safe, batches and sends in
    C); a thread serves its delivery reports. Creating one also tunes the allocator
    (``keep_large_buffers``)."""

    def __init__(self, settings: KafkaSettings, **config: Any) -> None:
        with _mapped("cannot create the producer"):
            self._producer = ck.Producer(settings.librdkafka_config() | {
                "acks": "all", "enable.idempotence": True, "linger.ms": 2,
                "message.timeout.ms": 120_000,  # kafka-python's delivery timeout (librdkafka's: 300 s)
                # a key's partition as kafka-python's and Java's (murmur2): a trigger's envelopes
                # stay in order whoever produced them (librdkafka's default hashes with CRC32)
                "partitioner": "murmur2_random",
                "message.max.bytes": 4 * 1024 * 1024, "logger": _librdkafka_log} | config)
        keep_large_buffers()
        self._stopping = threading.Event()
        self._reports = threading.Thread(target=self._serve_reports, name="kafka-producer-reports", daemon=True)
        self._reports.start()

    def _serve_reports(self) -> None:
        while not self._stopping.is_set():
            self._producer.poll(0.1)

    async def send(self, topic: str, value: bytes | None, key: bytes | None = None,
                   headers: list[tuple[str, bytes]] | None = None, partition: int | None = None) -> tuple[int, int]:
        """Send and wait for the broker's acknowledgement; returns (partition, offset).
        ``partition``: that one (the park's), else the key's."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[tuple[int, int]] = loop.create_future()
        what = f"send to {topic} failed"

        def report(error: ck.KafkaError | None, msg: ck.Message) -> None:
            if error is not None:
                loop.call_soon_threadsafe(settle, done, None, KafkaUnavailable(f"{what}: {error}"))
            else:
                loop.call_soon_threadsafe(settle, done, (msg.partition(), msg.offset()), None)

        extra: dict[str, Any] = {} if partition is None else {"partition": partition}
        sent_headers: list[tuple[str, str | bytes | None]] | None = list(headers) if headers else None
        while True:
            try:
                with _mapped(what):
                    self._producer.produce(topic, value=value, key=key, headers=sent_headers,
                                           on_delivery=report, **extra)
                break
            except BufferError:  # its queue is full: wait for deliveries
                await asyncio.sleep(0.01)
        return await done

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what is queued (up to ``timeout_s``), then stop the client and its thread."""
        with _mapped("closing the producer failed"):
            try:
                self._producer.flush(timeout_s)
            finally:
                self._stopping.set()
                self._reports.join(timeout_s)
                self._producer.close()


# --- the subscriptions log -------------------------------------------------------------------------

LOG_READ_RECORDS = 20_000  # records a read returns at most (loading a million: 50 reads)
LOG_PREFETCH_KB = 16 * 1024  # records fetched ahead while the table loads
LOG_FETCH_BYTES = 4 * 1024 * 1024  # per partition per fetch, as kafka-python's reader had
TOPIC_WAIT_S = 10.0  # how long a just-created topic may take to show its partition and its leader
_LEADER_PENDING = frozenset({ck.KafkaError.NOT_LEADER_FOR_PARTITION, ck.KafkaError.LEADER_NOT_AVAILABLE,
                             ck.KafkaError.UNKNOWN_TOPIC_OR_PART, ck.KafkaError._UNKNOWN_PARTITION})

# a record that cannot be read, or a topic this principal may not read: raised, as kafka-python
# raised them (a gap in the table would go unnoticed); other events (a broker down) are retried
_UNREADABLE = frozenset({ck.KafkaError._BAD_MSG, ck.KafkaError._BAD_COMPRESSION,
                         ck.KafkaError.TOPIC_AUTHORIZATION_FAILED})


class KafkaLog:
    """The subscriptions topic as a ``table.LogSource``: partition 0 assigned directly and read
    from the beginning (no subscription, nothing committed); created when missing (compacted, one
    partition, the spec of messaging_lib.topics) and refused with several partitions, since
    record order is the contract.

    ``group_id``: confluent-kafka requires one, and librdkafka looks up its coordinator even for a
    consumer that only assigns (FindCoordinator, Describe on the group): the router's own group,
    which the service principal already may describe, so the log needs no ACL of its own; it never
    joins that group nor commits in it."""

    def __init__(self, settings: KafkaSettings, topic: str, group_id: str,
                 variable: str = "SUBSCRIPTIONS_TOPIC") -> None:
        self._settings, self._topic, self._variable = settings, topic, variable
        self._config = settings.librdkafka_config() | {
            "group.id": group_id, "enable.auto.commit": False, "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_uncommitted",  # as kafka-python read it (librdkafka's default: committed)
            "check.crcs": True,  # as kafka-python did (librdkafka's default: not checked)
            "max.partition.fetch.bytes": LOG_FETCH_BYTES, "queued.max.messages.kbytes": LOG_PREFETCH_KB,
            "logger": _librdkafka_log}
        self._thread = ClientThread("kafka-subscriptions", _mapped)
        self._consumer: ck.Consumer | None = None

    async def open(self) -> int:
        return await self._thread.call(f"cannot read {self._topic}", self._open)

    def _open(self) -> int:
        self._consumer = ck.Consumer(self._config)
        self._ensure_topic(self._consumer)
        self._consumer.assign([ck.TopicPartition(self._topic, 0, ck.OFFSET_BEGINNING)])
        return _end_offset(self._consumer, ck.TopicPartition(self._topic, 0), time.monotonic() + TOPIC_WAIT_S)

    def _partitions(self, consumer: ck.Consumer) -> int:
        """The topic's partitions in fresh metadata (0: not there)."""
        found = consumer.list_topics(self._topic, timeout=10).topics.get(self._topic)
        return 0 if found is None or found.error is not None else len(found.partitions)

    def _ensure_topic(self, consumer: ck.Consumer) -> None:
        """Create the topic when missing (compacted, one partition, the broker's replication)."""
        partitions = self._partitions(consumer)
        if partitions:
            if partitions != 1:
                raise ConfigError(self._variable, f"topic {self._topic!r} must have exactly one partition")
            return
        admin = ck_admin.AdminClient(self._settings.librdkafka_config() | {"logger": _librdkafka_log})
        spec = ck_admin.NewTopic(self._topic, num_partitions=topics.SUBSCRIPTIONS_TOPIC_PARTITIONS,
                                 replication_factor=-1, config=dict(topics.SUBSCRIPTIONS_TOPIC_CONFIG))
        try:
            admin.create_topics([spec], operation_timeout=10)[self._topic].result(timeout=30)
            log.info("created the subscriptions topic", extra={"fields": {"topic": self._topic}})
        except ck.KafkaException as e:
            if e.args[0].code() != ck.KafkaError.TOPIC_ALREADY_EXISTS:
                raise
        deadline = time.monotonic() + TOPIC_WAIT_S  # until this client's metadata shows it
        while not self._partitions(consumer) and time.monotonic() < deadline:
            time.sleep(0.1)

    async def read(self, timeout_s: float) -> list[Change]:
        def read() -> list[Change]:
            assert self._consumer is not None
            return _changes(_take(self._consumer, LOG_READ_RECORDS, timeout_s))
        return await self._thread.call(f"reading {self._topic} failed", read)

    async def close(self) -> None:
        def close() -> None:
            if self._consumer is not None:
                self._consumer.close()
        try:
            await self._thread.call(f"closing {self._topic} failed", close)
        finally:
            self._thread.shutdown()


def _end_offset(consumer: ck.Consumer, tp: ck.TopicPartition, deadline: float,
                sleep: Callable[[float], None] = time.sleep) -> int:
    """The partition's end offset. A topic just created has no leader for a moment (seen:
    NOT_LEADER_FOR_PARTITION from the broker right after the creation), so those answers are
    asked again until ``deadline`` (``time.monotonic``)."""
    while True:
        try:
            return int(consumer.get_watermark_offsets(tp, timeout=10, cached=False)[1])
        except ck.KafkaException as e:
            if e.args[0].code() not in _LEADER_PENDING or time.monotonic() >= deadline:
                raise
            sleep(0.1)


def _changes(messages: list[ck.Message]) -> list[Change]:
    """The records as ``Change``s; an error event is raised when the log cannot be read on
    (``_UNREADABLE``, or fatal), else logged (librdkafka retries)."""
    # a record, unlike an error event, has its offset (typed int | None for both)
    changes = [Change(m.offset(), m.key(), m.value()) for m in messages if m.error() is None]  # type: ignore[arg-type]
    if len(changes) < len(messages):
        for m in messages:
            if (error := m.error()) is not None:
                if error.fatal() or error.code() in _UNREADABLE:
                    raise ck.KafkaException(error)
                _log_event(error)
    return changes
