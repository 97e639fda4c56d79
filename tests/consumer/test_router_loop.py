"""The real Router without Kafka: an in-memory group reader, producer and subscriptions log.

``FakeKafka`` holds the input topics and the group's committed offsets, so a second Router on the
same ``FakeKafka`` is a restart. ``FakeReader`` (the injected ``reader_factory``) is a group of one
member: it gets every partition of its topics, hands assignments and revocations over through the
router's callbacks at the next poll, as kafka-python does, and records seeks, pauses and commits.
``FakeProducer`` records acknowledged sends and can fail or hold them. The clock is real time plus
a skew the test advances, so batch windows and commit intervals are under the test's control.
Every wait is for a condition, with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography.fernet import Fernet
from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from prometheus_client import CollectorRegistry

from consumer import batching, positions
from consumer import router as router_module
from consumer.kafka_shared import KafkaUnavailable, PartitionRecords, Record
from consumer.metrics import RouterMetrics
from consumer.router import Router
from consumer.settings import Settings
from consumer.table import Change, LogSource, MemoryLog
from feed import grants, records
from feed.records import Options, Segment, Status, Subscription
from messaging_lib import envelope, topics
from messaging_lib.credentials import ENVELOPE_TTL_S, Sealer
from messaging_lib.kafka_config import KafkaSettings
from tests.fixtures.router_log import current_subscription, write_subscription

OUT, DEAD, GROUP, SUBSCRIPTIONS = "envelopes", "dead", "router-test", "subscriptions"
API_KEY = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:" + "a" * 64
SEALING_KEY = Fernet.generate_key().decode()
SEALER = Sealer([SEALING_KEY])
Offsets = dict[TopicPartition, tuple[int, str]]


# --- fakes ------------------------------------------------------------------------------------


class FakeKafka:
    """The input topics (records per partition) and the router group's committed offsets."""

    def __init__(self) -> None:
        self.partitions: dict[str, list[list[Record]]] = {}
        self.committed: Offsets = {}
        self.commits: list[Offsets] = []
        self.changed = asyncio.Event()  # something to fetch or hand over

    def create_topic(self, name: str, partitions: int = 1) -> str:
        self.partitions[name] = [[] for _ in range(partitions)]
        return name

    def produce(self, topic: str, values: list[str], partition: int = 0, key: bytes | None = None,
                headers: list[tuple[str, bytes]] | None = None) -> None:
        log = self.partitions[topic][partition]
        for value in values:
            log.append(Record(topic, partition, len(log), key, value.encode(), list(headers or []), 1_700_000_000_000))
        self.changed.set()

    def ends(self, topic: str) -> dict[int, int]:
        return {p: len(log) for p, log in enumerate(self.partitions[topic])}

    def committed_offset(self, topic: str, partition: int = 0) -> int | None:
        found = self.committed.get(TopicPartition(topic, partition))
        return None if found is None else found[0]


class FakeReader:
    """A ``GroupReader`` in memory (see the module docstring)."""

    def __init__(self, kafka: FakeKafka, on_assigned: Callable[[list[TopicPartition]], None],
                 on_revoked: Callable[[list[TopicPartition]], None]) -> None:
        self._kafka, self._on_assigned, self._on_revoked = kafka, on_assigned, on_revoked
        self.topics: frozenset[str] = frozenset()
        self.assigned: set[TopicPartition] = set()
        self.paused: set[TopicPartition] = set()
        self.position: dict[TopicPartition, int] = {}
        self._to_revoke: list[TopicPartition] = []
        self._to_assign: list[TopicPartition] = []
        self.seeks: list[dict[TopicPartition, int]] = []
        self.pauses: list[tuple[list[TopicPartition], bool]] = []
        self.polls = 0
        self.fail_commits = False
        self.poll_error: Exception | None = None  # raised by the next poll (kafka-python failing inside)
        self.closed = False

    async def set_topics(self, wanted_topics: Collection[str]) -> None:
        wanted = frozenset(wanted_topics)
        if not wanted:  # the consumer is closed: the group is left, no callback
            self.assigned.clear()
            self.paused.clear()
            self._to_assign.clear()
            self._to_revoke.clear()
        else:
            self.rebalance(revoke=[tp for tp in self.assigned if tp.topic not in wanted],
                           assign=[TopicPartition(t, p) for t in sorted(wanted - self.topics)
                                   for p in range(len(self._kafka.partitions.get(t, [])))])
        self.topics = wanted

    def rebalance(self, revoke: Collection[TopicPartition] = (), assign: Collection[TopicPartition] = ()) -> None:
        """A cooperative rebalance, handed over at the next poll."""
        self._to_revoke += revoke
        self._to_assign += assign
        self._kafka.changed.set()

    async def refresh_metadata(self) -> None:
        return None

    async def missing(self, topic_names: Collection[str]) -> frozenset[str]:
        return frozenset(topic_names) - set(self._kafka.partitions)

    async def poll(self, timeout_s: float, max_records: int) -> list[PartitionRecords]:
        self.polls += 1
        if self.poll_error is not None:
            error, self.poll_error = self.poll_error, None
            raise error
        handed_over = self._hand_over()
        found = self._fetch(max_records)
        if not found and not handed_over:
            self._kafka.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kafka.changed.wait(), timeout_s)
        return found

    def _hand_over(self) -> bool:
        revoked, self._to_revoke = [tp for tp in self._to_revoke if tp in self.assigned], []
        if revoked:
            self.assigned.difference_update(revoked)
            self.paused.difference_update(revoked)
            self._on_revoked(revoked)
        assigned, self._to_assign = self._to_assign, []
        if assigned:
            self.assigned.update(assigned)
            self.paused.update(assigned)  # the listener pauses them until the owner starts them
            for tp in assigned:
                self.position[tp] = 0
            self._on_assigned(assigned)
        return bool(revoked or assigned)

    def _fetch(self, max_records: int) -> list[PartitionRecords]:
        """Per partition, as kafka-python's records (``GroupReader.poll``); a deleted topic's
        partitions fetch nothing (kafka-python logs and waits)."""
        found: list[PartitionRecords] = []
        room = max_records
        for tp in sorted(tp for tp in self.assigned - self.paused if tp.topic in self._kafka.partitions):
            log = self._kafka.partitions[tp.topic][tp.partition]
            taken = log[self.position[tp]:self.position[tp] + room]
            self.position[tp] += len(taken)
            room -= len(taken)
            if taken:
                found.append(PartitionRecords(tp.topic, tp.partition, [
                    ConsumerRecord(r.topic, r.partition, -1, r.offset, r.timestamp_ms, 0, r.key, r.value, r.headers,
                                   None, -1, -1, -1) for r in taken]))
        return found

    async def positions_of(self, partitions: list[TopicPartition]
                           ) -> tuple[dict[TopicPartition, tuple[int, str] | None], dict[TopicPartition, int]]:
        if any(tp.topic not in self._kafka.partitions for tp in partitions):
            raise KafkaUnavailable("fetching positions failed: unknown topic or partition")
        committed = {tp: self._kafka.committed.get(tp) for tp in partitions}
        return committed, {tp: len(self._kafka.partitions[tp.topic][tp.partition]) for tp in partitions}

    async def start(self, positions: dict[TopicPartition, int]) -> None:
        mine = {tp: o for tp, o in positions.items() if tp in self.assigned}
        self.position.update(mine)
        self.paused.difference_update(mine)

    async def seek(self, positions: dict[TopicPartition, int]) -> None:
        self.seeks.append(dict(positions))
        self.position.update({tp: o for tp, o in positions.items() if tp in self.assigned})

    async def pause(self, partitions: Collection[TopicPartition], pause: bool) -> None:
        owned = [tp for tp in partitions if tp in self.assigned]
        self.pauses.append((owned, pause))
        if pause:
            self.paused.update(owned)
        else:
            self.paused.difference_update(owned)

    async def commit(self, offsets: Offsets) -> None:
        if self.fail_commits:
            raise KafkaUnavailable("the coordinator is away")
        if offsets:
            self._kafka.committed.update(offsets)
            self._kafka.commits.append(dict(offsets))

    async def close(self) -> None:
        await self.set_topics(())
        self.closed = True


@dataclass
class Sent:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    def opened(self) -> envelope.Envelope:
        return envelope.parse_record(self.headers, self.value)


class FakeProducer:
    """Records acknowledged sends; ``hold`` keeps matching sends waiting until ``release``."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.failures = 0  # the next sends that fail as Kafka being away
        self.broken: BaseException | None = None  # every send raises it (a bug)
        self._held: Callable[[Sent], bool] | None = None
        self._credits = 0
        self._released = asyncio.Event()
        self.waiting = 0

    def hold(self, which: Callable[[Sent], bool] = lambda s: True) -> None:
        self._held, self._credits = which, 0

    def release(self, count: int | None = None) -> None:
        """Let ``count`` held sends through, or all from now on."""
        if count is None:
            self._held = None
        else:
            self._credits += count
        self._released.set()

    async def send(self, topic: str, value: bytes | None, key: bytes | None = None,
                   headers: list[tuple[str, bytes]] | None = None) -> tuple[int, int]:
        if self.broken is not None:
            raise self.broken
        if self.failures:
            self.failures -= 1
            raise KafkaUnavailable(f"send to {topic} failed")
        sent = Sent(topic, key, value, list(headers or []))
        await self._wait_if_held(sent)
        self.sent.append(sent)
        return 0, len(self.sent) - 1

    async def _wait_if_held(self, sent: Sent) -> None:
        self.waiting += 1
        try:
            while self._held is not None and self._held(sent) and not self._credits:
                self._released.clear()
                await self._released.wait()
            if self._held is not None and self._held(sent):
                self._credits -= 1
        finally:
            self.waiting -= 1


class Clock:
    """Real monotonic time plus a skew the test adds to (windows, intervals, deadlines)."""

    def __init__(self) -> None:
        self.skew = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.skew

    def advance(self, seconds: float) -> None:
        self.skew += seconds


class GatedSource:
    """A ``LogSource`` whose reads wait for ``gate`` (a subscriptions topic slow to load)."""

    def __init__(self, inner: LogSource) -> None:
        self._inner, self.gate, self.reads = inner, asyncio.Event(), 0

    async def open(self) -> int:
        return await self._inner.open()

    async def read(self, timeout_s: float) -> list[Change]:
        self.reads += 1
        await self.gate.wait()
        return await self._inner.read(timeout_s)

    async def close(self) -> None:
        await self._inner.close()


# --- the harness ------------------------------------------------------------------------------


@dataclass
class Harness:
    kafka: FakeKafka = field(default_factory=FakeKafka)
    log: MemoryLog = field(default_factory=MemoryLog)
    producer: FakeProducer = field(default_factory=FakeProducer)
    clock: Clock = field(default_factory=Clock)
    settings_overrides: dict[str, Any] = field(default_factory=dict)
    readers: list[FakeReader] = field(default_factory=list)
    router: Router | None = None
    task: asyncio.Future[None] | None = None
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    grant_guest: bool = True  # as the operator does for the test user: every topic (see tests/e2e)

    def grant(self, namespace: str, topic: str, prefix: bool = False, revoke: bool = False) -> int:
        given = grants.Grant(namespace, topic, prefix)
        return self.log.append(given.key, None if revoke else grants.encode_grant(given, 1))

    def settings(self) -> Settings:
        values: dict[str, Any] = dict(roles="router", sealing_keys=SEALING_KEY,
                                      kafka=KafkaSettings(bootstrap_servers=("unused:9092",)),
                                      subscriptions_topic=SUBSCRIPTIONS,
                                      trigger_messages_topic=OUT, dead_letter_topic=DEAD, router_group=GROUP,
                                      commit_interval_s=0.02, shutdown_timeout_s=5.0, max_payload_bytes=10_000)
        return Settings(**(values | self.settings_overrides))

    def _reader(self, _kafka: KafkaSettings, group: str, on_assigned: Callable[[list[TopicPartition]], None],
                on_revoked: Callable[[list[TopicPartition]], None], **_config: Any) -> FakeReader:
        assert group == GROUP
        self.readers.append(FakeReader(self.kafka, on_assigned, on_revoked))
        return self.readers[-1]

    @property
    def reader(self) -> FakeReader:
        return self.readers[-1]

    async def start(self, source: LogSource | None = None, wait_ready: bool = True) -> Router:
        """Start a router; the first start grants the test user every topic (after the records the
        test wrote: their offsets stay, and the table's load decides them once the grant is read)."""
        if self.grant_guest:
            self.grant_guest = False
            self.grant("guest", "", prefix=True)
        self.registry = CollectorRegistry()
        self.router = Router(self.settings(), self.producer, source or self.log.reader(),  # type: ignore[arg-type]
                             RouterMetrics(self.registry), reader_factory=self._reader, clock=self.clock,
                             sealer=SEALER)
        self.task = asyncio.ensure_future(self.router.run())
        if wait_ready:
            await until(lambda: self.router is not None and self.router.ready, "the router is ready")
        return self.router

    async def stop(self) -> None:
        assert self.router is not None and self.task is not None
        self.router.stop()
        await asyncio.wait_for(self.task, 10)

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def subscribe(self, trigger: str, topic: str, start: dict[int, int] | None = None, credential: str | None = None,
                  **options: Any) -> int:
        """CREATE (as kafkaFeed seals it, or with ``credential``); ``start`` defaults to the topic's
        end offsets ("latest"; a topic that does not exist: none)."""
        ends = self.kafka.ends(topic) if topic in self.kafka.partitions else {}
        credential = SEALER.seal_subscription(API_KEY, trigger) if credential is None else credential
        sub = Subscription(trigger=trigger, topic=topic, credential=credential, options=Options(**options),
                           start_from="latest" if start is None else "earliest",
                           segments=(Segment(None, ends if start is None else start),),
                           created_ms=1, updated_ms=1)
        return write_subscription(self.log, sub)

    def current(self, trigger: str) -> Subscription:
        return current_subscription(self.log, trigger)

    def rewrite(self, sub: Subscription) -> int:
        return write_subscription(self.log, sub)

    def envelopes(self, trigger: str | None = None) -> list[envelope.Envelope]:
        found = [s.opened() for s in self.producer.sent if s.topic == OUT]
        return [e for e in found if trigger is None or e.trigger == trigger]

    def batches(self, trigger: str) -> list[list[str]]:
        return [[m["value"] for m in e.data["messages"]] for e in self.envelopes(trigger)]  # type: ignore[index]

    def values(self, trigger: str) -> list[str]:
        return [v for batch in self.batches(trigger) for v in batch]

    def dead(self) -> list[Sent]:
        return [s for s in self.producer.sent if s.topic == DEAD]

    def statuses(self, trigger: str) -> list[Status]:
        """The status records the router wrote for ``trigger``."""
        return [records.decode_status(s.value) for s in self.producer.sent  # type: ignore[arg-type]
                if s.topic == SUBSCRIPTIONS and s.key == records.status_key(trigger)]

    def feed_back(self) -> None:
        """The subscriptions topic, as Kafka would: what the router wrote there comes back to its table."""
        for s in self.producer.sent[self._fed:]:
            if s.topic == SUBSCRIPTIONS:
                self.log.append(s.key, s.value)
        self._fed = len(self.producer.sent)

    _fed: int = 0

    async def polls(self, count: int = 3) -> None:
        """Let the loop go round ``count`` more times (each poll is one iteration)."""
        target = self.reader.polls + count
        await until(lambda: self.reader.polls >= target, f"{count} more polls")


async def until(check: Callable[[], object], what: str, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


def run(scenario: Callable[[Harness], Awaitable[None]], **settings: Any) -> None:
    asyncio.run(asyncio.wait_for(scenario(Harness(settings_overrides=settings)), 30))


def texts(prefix: str, n: int, start: int = 0) -> list[str]:
    return [f"{prefix}{i}" for i in range(start, start + n)]


LONG_WINDOW_MS = 60_000  # a window that never passes unless the test advances the clock


# --- routing ----------------------------------------------------------------------------------


def test_records_reach_every_trigger_subscribed_to_their_topic_and_no_other() -> None:
    async def scenario(h: Harness) -> None:
        orders, audit = h.kafka.create_topic("orders", partitions=2), h.kafka.create_topic("audit")
        h.kafka.create_topic("unsubscribed")
        version = h.subscribe("/guest/A", orders)
        h.subscribe("/guest/B", orders, is_json_data=True)
        h.subscribe("/guest/C", audit)
        await h.start()
        h.kafka.produce(orders, ['{"n":0}', "p0-1"], partition=0, key=b"k", headers=[("h", b"v")])
        h.kafka.produce(orders, ["p1-0"], partition=1)
        h.kafka.produce(audit, ["a0"])
        h.kafka.produce("unsubscribed", ["never"])
        await until(lambda: len(h.values("/guest/A")) == 3 and len(h.values("/guest/B")) == 3
                    and h.values("/guest/C") == ["a0"], "every record at its triggers")
        assert sorted(h.values("/guest/A")) == sorted(['{"n":0}', "p0-1", "p1-0"])
        assert {"n": 0} in h.values("/guest/B")  # per-subscription encoding
        assert h.reader.topics == {orders, audit}
        first = h.envelopes("/guest/A")[0]
        assert records.config_version_of(first.source) == version
        opened = SEALER.authorize(first.credential, "/guest/A")  # short-lived, for that trigger only (issue 11)
        assert (opened.key, opened.scope, opened.use) == (API_KEY, ("/guest/A",), None)
        assert opened.exp is not None and 0 < opened.exp - opened.iat <= ENVELOPE_TTL_S
        assert first.credential != h.current("/guest/A").credential
        assert next(s.key for s in h.producer.sent if s.opened().trigger == "/guest/A") == b"/guest/A"
        message = next(m for e in h.envelopes("/guest/A") for m in e.data["messages"]  # type: ignore[index]
                       if m["offset"] == 0 and m["partition"] == 0)
        assert message == {"topic": orders, "partition": 0, "offset": 0, "key": "k", "value": '{"n":0}',
                           "timestamp": 1_700_000_000_000, "headers": [["h", "v"]]}
        await h.stop()
        assert h.kafka.committed_offset(orders, 0) == 2 and h.kafka.committed_offset(orders, 1) == 1
        assert h.kafka.committed_offset(audit) == 1
    run(scenario)


def test_order_per_trigger_is_kept_across_envelopes() -> None:
    async def scenario(h: Harness) -> None:
        topic = h.kafka.create_topic("orders")
        h.subscribe("/guest/T", topic, max_batch_messages=2, batch_window_ms=LONG_WINDOW_MS)
        await h.start()
        h.kafka.produce(topic, texts("m", 9))
        await until(lambda: len(h.values("/guest/T")) == 8, "four full batches")
        assert h.batches("/guest/T") == [["m0", "m1"], ["m2", "m3"], ["m4", "m5"], ["m6", "m7"]]
        await h.stop()
        assert h.batches("/guest/T")[-1] == ["m8"]
    run(scenario)


# --- batching ---------------------------------------------------------------------------------


def test_a_batch_closes_at_its_count_and_the_rest_waits_for_the_window() -> None:
    async def scenario(h: Harness) -> None:
        topic = h.kafka.create_topic("orders")
        h.subscribe("/guest/T", topic, max_batch_messages=3, batch_window_ms=LONG_WINDOW_MS)
        await h.start()
        h.kafka.produce(topic, texts("m", 7))
        await until(lambda: h.metric("router_records_consumed_total") == 7, "all routed")
        await until(lambda: len(h.envelopes()) == 2, "two full batches")
        await h.polls()
        assert h.batches("/guest/T") == [texts("m", 3), texts("m", 3, 3)]  # m6 waits for its window
        h.clock.advance(LONG_WINDOW_MS / 1000)
        await until(lambda: len(h.envelopes()) == 3, "the window's batch")
        assert h.batches("/guest/T")[-1] == ["m6"]
        await h.stop()
    run(scenario)


def test_a_batch_closes_before_a_message_would_take_it_over_its_byte_limit() -> None:
    async def scenario(h: Harness) -> None:
        topic = h.kafka.create_topic("orders")
        one = len(batching.encode(batching.message(topic, 0, 0, None, b"m0", 1_700_000_000_000, [], Options())))
        limit = len(batching.payload([b"x" * one] * 2))  # two messages fit, three do not
        h.subscribe("/guest/T", topic, max_batch_bytes=limit, batch_window_ms=LONG_WINDOW_MS)
        await h.start()
        h.kafka.produce(topic, texts("m", 5))
        await until(lambda: len(h.envelopes()) == 2, "two full batches")
        assert h.batches("/guest/T") == [["m0", "m1"], ["m2", "m3"]]
        assert all(len(s.value or b"") <= limit for s in h.producer.sent)
        await h.stop()
        assert h.batches("/guest/T")[-1] == ["m4"]  # the open batch is sent at shutdown
    run(scenario)


def test_each_trigger_batches_under_its_own_limits() -> None:
    async def scenario(h: Harness) -> None:
        topic = h.kafka.create_topic("orders")
        h.subscribe("/guest/One", topic, max_batch_messages=1, batch_window_ms=LONG_WINDOW_MS)
        h.subscribe("/guest/Window", topic, batch_window_ms=LONG_WINDOW_MS)
        await h.start()
        h.kafka.produce(topic, texts("m", 3))
        await until(lambda: len(h.envelopes("/guest/One")) == 3, "one envelope per message")
        await h.polls()
        assert h.envelopes("/guest/Window") == []  # its window has not passed
        h.clock.advance(LONG_WINDOW_MS / 1000)
        await until(lambda: h.batches("/guest/Window") == [texts("m", 3)], "the window's batch")
        await h.stop()
    run(scenario)


def test_a_changed_subscription_sends_its_open_batch_under_the_version_it_was_built_for() -> None:
    async def scenario(h: Harness) -> None:
        topic = h.kafka.create_topic("orders")
        first = h.subscribe("/guest/T", topic, batch_window_ms=LONG_WINDOW_MS)
        await h.start()
        h.kafka.produce(topic, ['{"n":1}'])
        await until(lambda: h.metric("router_records_consumed_total") == 1, "routed")
        second = h.rewrite(replace(h.current("/guest/T"),
                                   options=Options(is_json_data=True, batch_window_ms=LONG_WINDOW_MS)))
        await until(lambda: len(h.envelopes()) == 1, "the open batch closed by the change")
        h.kafka.produce(topic, ['{"n":2}'])
        await until(lambda: h.metric("router_records_consumed_total") == 2, "routed")
        await h.stop()
        assert [(records.config_version_of(e.source), e.data["messages"][0]["value"])  # type: ignore[index]
                for e in h.envelopes()] == [(first, '{"n":1}'), (second, {"n": 2})]
    run(scenario)


# --- catch-up ---------------------------------------------------------------------------------


def test_a_subscription_starting_earlier_rewinds_for_itself_only_and_commits_its_window() -> None:
    async def scenario(h: Harness) -> None:
        topic = h.kafka.create_topic("orders")
        tp = TopicPartition(topic, 0)
        h.kafka.produce(topic, texts("old", 3))
        h.subscribe("/guest/A", topic)
        await h.start()
        h.kafka.produce(topic, texts("new", 2))
        await until(lambda: h.values("/guest/A") == texts("new", 2), "A's records")
        await until(lambda: h.kafka.committed_offset(topic) == 5, "A's records committed")
        h.producer.hold(lambda s: s.key == b"/guest/B")  # the catch-up stays open while B's envelopes wait
        origin = h.subscribe("/guest/B", topic, start={0: 0})
        await until(lambda: h.producer.waiting == 1, "B's first envelope written")
        assert h.reader.seeks == [{tp: 0}]
        assert h.metric("router_catchups_total") == 1
        await until(lambda: h.kafka.committed_offset(topic) == 0, "the rewound position committed")
        state = positions.decode(h.kafka.committed[tp][1])  # B's records are not acknowledged: nothing past them
        assert state is not None
        assert (state.window_end, state.catching, state.joined_through) == (5, {origin: 0}, origin)
        h.producer.release()
        await until(lambda: h.values("/guest/B") == texts("old", 3) + texts("new", 2), "B caught up")
        h.kafka.produce(topic, ["later"])
        await until(lambda: h.values("/guest/B")[-1:] == ["later"] and h.values("/guest/A")[-1:] == ["later"],
                    "the next record to both")
        await until(lambda: h.kafka.committed_offset(topic) == 6, "all committed")
        state = positions.decode(h.kafka.committed[tp][1])
        assert state is not None and state.window_end is None  # the window closed
        await h.stop()
        assert h.values("/guest/A") == [*texts("new", 2), "later"]  # nothing twice
        assert h.values("/guest/B") == [*texts("old", 3), *texts("new", 2), "later"]
    run(scenario)


def test_a_catch_up_decided_while_the_router_was_down_happens_at_its_restart() -> None:
    async def scenario(h: Harness) -> None:
        topic = h.kafka.create_topic("orders")
        h.subscribe("/guest/A", topic)
        await h.start()
        h.kafka.produce(topic, texts("a", 4))
        await until(lambda: len(h.values("/guest/A")) == 4, "A's records")
        await h.stop()
        h.subscribe("/guest/B", topic, start={0: 0})
        h.kafka.produce(topic, ["b"])
        await h.start()
        await until(lambda: len(h.values("/guest/B")) == 5 and len(h.values("/guest/A")) == 5, "both served")
        await h.stop()
        assert h.values("/guest/B") == [*texts("a", 4), "b"]
        assert h.values("/guest/A") == [*texts("a", 4), "b"]
    run(scenario)


def test_pause_holds_one_subscription_and_unpause_resumes_where_it_stopped() -> None:
    async def scenario(h: Harness) -> None:
        topic = h.kafka.create_topic("orders")
        h.subscribe("/guest/P", topic)
        h.subscribe("/guest/Q", topic)
        await h.start()
        h.kafka.produce(topic, ["1"])
        await until(lambda: h.values("/guest/P") == ["1"], "P's first record")
        h.rewrite(h.current("/guest/P").paused_at(h.kafka.ends(topic), now_ms=2))
        await until(lambda: h.router is not None and h.router.index.get("/guest/P").sub.paused,  # type: ignore[union-attr]
                    "the pause applied")
        h.kafka.produce(topic, ["2", "3"])
        await until(lambda: h.values("/guest/Q") == ["1", "2", "3"], "the others go on")
        assert h.values("/guest/P") == ["1"]
        h.rewrite(h.current("/guest/P").unpaused(now_ms=3))
        await until(lambda: h.values("/guest/P") == ["1", "2", "3"], "P resumed where it stopped")
        await h.stop()
        assert h.values("/guest/Q") == ["1", "2", "3"]
    run(scenario)


# --- backpressure and at-least-once -----------------------------------------------------------


def test_partitions_pause_at_the_in_flight_limit_and_resume_below_half_of_it() -> None:
    async def scenario(h: Harness) -> None:
        topic = h.kafka.create_topic("orders")
        tp = TopicPartition(topic, 0)
        h.subscribe("/guest/T", topic, max_batch_messages=1)
        await h.start()
        h.producer.hold()
        h.kafka.produce(topic, texts("m", 10))
        await until(lambda: h.metric("router_in_flight") == 4 and tp in h.reader.paused, "paused at the limit")
        await h.polls()
        assert h.metric("router_records_consumed_total") == 4  # two polls of two, then the limit
        h.producer.release(1)
        await until(lambda: h.metric("router_in_flight") == 3, "one acknowledged")
        await h.polls()
        assert tp in h.reader.paused and h.metric("router_records_consumed_total") == 4  # 3 > half of 4
        assert not any(owned and not pause for owned, pause in h.reader.pauses)
        h.producer.release(1)
        await until(lambda: any(owned and not pause for owned, pause in h.reader.pauses), "resumed at half")
        await until(lambda: h.metric("router_records_consumed_total") == 6, "two more read, up to the limit")
        h.producer.release()
        await until(lambda: h.values("/guest/T") == texts("m", 10), "everything delivered")
        changes = [p for i, (owned, p) in enumerate(h.reader.pauses)
                   if owned and (i == 0 or p != h.reader.pauses[i - 1][1])]
        assert changes[:2] == [True, False]
        await until(lambda: tp not in h.reader.paused, "resumed once all is acknowledged")
        await h.stop()
    run(scenario, router_max_in_flight=4, router_max_poll_records=2)


def test_an_offset_is_committed_only_once_every_envelope_built_from_earlier_records_is_acknowledged() -> None:
    async def scenario(h: Harness) -> None:
        topic = h.kafka.create_topic("orders")
        h.subscribe("/guest/Fast", topic, max_batch_messages=1)
        h.subscribe("/guest/Slow", topic, max_batch_messages=1)
        await h.start()
        h.producer.hold(lambda s: s.key == b"/guest/Slow" and b'"m1"' in (s.value or b""))
        h.kafka.produce(topic, texts("m", 3))
        await until(lambda: h.values("/guest/Fast") == texts("m", 3) and h.values("/guest/Slow") == ["m0"],
                    "all but Slow's m1 (and m2 behind it)")
        await until(lambda: h.kafka.committed_offset(topic) == 1, "m0 committed")
        h.clock.advance(1.0)
        await h.polls()
        assert h.kafka.committed_offset(topic) == 1  # m1 is not acknowledged for Slow
        h.producer.release()
        await until(lambda: h.kafka.committed_offset(topic) == 3, "all committed")
        assert h.values("/guest/Slow") == texts("m", 3)
        await h.stop()
    run(scenario)


def test_after_a_crash_what_was_not_acknowledged_is_delivered_again() -> None:
    async def scenario(h: Harness) -> None:
        topic = h.kafka.create_topic("orders")
        h.subscribe("/guest/Fast", topic, max_batch_messages=1)
        h.subscribe("/guest/Slow", topic, max_batch_messages=1)
        await h.start()
        h.producer.hold(lambda s: s.key == b"/guest/Slow" and b'"m1"' in (s.value or b""))
        h.kafka.produce(topic, texts("m", 3))
        await until(lambda: h.values("/guest/Fast") == texts("m", 3), "Fast served")
        await h.stop()  # the shutdown timeout passes with Slow's m1 unacknowledged: a crash for it
        assert h.kafka.committed_offset(topic) == 1
        h.producer.release()
        await h.start()
        await until(lambda: h.values("/guest/Slow") == texts("m", 3), "Slow served after the restart")
        assert h.values("/guest/Fast") == texts("m", 3) + texts("m", 2, 1)  # at least once: duplicates
        await h.stop()
    run(scenario, shutdown_timeout_s=0.2)


def test_a_write_kafka_refuses_is_retried_until_acknowledged() -> None:
    async def scenario(h: Harness) -> None:
        topic = h.kafka.create_topic("orders")
        h.subscribe("/guest/T", topic, max_batch_messages=1)
        await h.start()
        h.producer.failures = 2
        h.kafka.produce(topic, ["m0"])
        await until(lambda: h.values("/guest/T") == ["m0"], "written after two failures")
        assert h.producer.failures == 0
        await until(lambda: h.kafka.committed_offset(topic) == 1, "committed after the ack")
        await h.stop()
    run(scenario)


def test_a_failed_commit_is_retried_at_the_next_interval() -> None:
    async def scenario(h: Harness) -> None:
        topic = h.kafka.create_topic("orders")
        h.subscribe("/guest/T", topic, max_batch_messages=1)
        await h.start()
        h.reader.fail_commits = True
        h.kafka.produce(topic, ["m0"])
        await until(lambda: h.values("/guest/T") == ["m0"], "written")
        await h.polls()
        assert h.kafka.committed_offset(topic) is None
        h.reader.fail_commits = False
        await until(lambda: h.kafka.committed_offset(topic) == 1, "committed")
        await h.stop()
    run(scenario)


# --- rebalances -------------------------------------------------------------------------------


def test_a_partition_revoked_mid_flight_commits_what_was_acknowledged_and_routes_nothing_more() -> None:
    async def scenario(h: Harness) -> None:
        topic = h.kafka.create_topic("orders", partitions=2)
        tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
        h.subscribe("/guest/T", topic, max_batch_messages=1)
        await h.start()
        await until(lambda: h.kafka.committed.keys() >= {tp0, tp1}, "both partitions placed and committed")
        h.producer.hold()
        h.kafka.produce(topic, ["a"], partition=0)
        h.kafka.produce(topic, ["b"], partition=1)
        await until(lambda: h.metric("router_records_consumed_total") == 2 and h.producer.waiting == 1,
                    "a written and unacknowledged, b queued behind it")
        h.reader.rebalance(revoke=[tp1])
        await until(lambda: tp1 not in h.reader.assigned, "revoked")
        for _ in range(10):
            await asyncio.sleep(0)  # the hand-over runs on the loop
        assert h.kafka.committed_offset(topic, 1) == 0  # its final commit waits for its envelope
        h.producer.release()
        await until(lambda: h.kafka.committed_offset(topic, 1) == 1, "the revoked partition's final commit")
        h.kafka.produce(topic, ["c"], partition=1)
        h.kafka.produce(topic, ["d"], partition=0)
        await until(lambda: "d" in h.values("/guest/T"), "the kept partition goes on")
        await h.polls()
        assert sorted(h.values("/guest/T")) == ["a", "b", "d"]  # c belongs to the new owner
        await h.stop()
        assert h.kafka.committed_offset(topic, 1) == 1 and h.kafka.committed_offset(topic, 0) == 2
    run(scenario)


def test_a_partition_assigned_starts_from_its_committed_offset_and_metadata() -> None:
    async def scenario(h: Harness) -> None:
        topic = h.kafka.create_topic("orders", partitions=2)
        tp1 = TopicPartition(topic, 1)
        h.subscribe("/guest/T", topic, start={0: 0, 1: 0}, max_batch_messages=1)
        h.kafka.produce(topic, ["x0", "x1"], partition=1)
        h.kafka.committed[tp1] = (1, positions.encode(positions.PartitionState(joined_through=0), 1))  # x0 was done
        await h.start()
        await until(lambda: h.values("/guest/T") == ["x1"], "from the committed offset")
        await h.stop()
    run(scenario)


# --- dead letters -----------------------------------------------------------------------------


def test_a_disabled_subscriptions_messages_are_dead_lettered_and_an_update_re_enables_it() -> None:
    async def scenario(h: Harness) -> None:
        topic = h.kafka.create_topic("orders")
        version = h.subscribe("/guest/D", topic)
        h.subscribe("/guest/OK", topic)
        h.log.append(records.status_key("/guest/D"),
                     records.encode_status(Status(404, records.disabled_message(404), version, 1)))
        await h.start()
        h.kafka.produce(topic, ["m0", "m1"], key=b"k", headers=[("h", b"v"), (topics.DL_REASON, b"stale")])
        await until(lambda: len(h.dead()) == 2 and len(h.values("/guest/OK")) == 2, "dead letters and deliveries")
        assert h.envelopes("/guest/D") == []
        for dead, offset in zip(h.dead(), (0, 1), strict=True):
            headers = dict(dead.headers)
            assert (dead.key, dead.value) == (b"k", f"m{offset}".encode())
            assert headers[topics.DL_TRIGGER] == b"/guest/D"
            assert headers[topics.DL_REASON] == b"subscription-disabled"
            assert headers[topics.DL_SOURCE_OFFSET] == str(offset).encode()
            assert headers["h"] == b"v" and [k for k, _ in dead.headers].count(topics.DL_REASON) == 1
        assert h.metric("router_messages_dead_lettered_total", reason="subscription-disabled") == 2
        await until(lambda: h.kafka.committed_offset(topic) == 2, "committed after the dead letters' acks")
        h.rewrite(replace(h.current("/guest/D"), updated_ms=9))  # an UPDATE re-enables
        await until(lambda: h.router is not None and not h.router.index.get("/guest/D").disabled,  # type: ignore[union-attr]
                    "re-enabled")
        h.kafka.produce(topic, ["again"])
        await until(lambda: h.values("/guest/D") == ["again"], "delivered again")
        await h.stop()
    run(scenario)


def test_a_message_over_the_payload_limit_is_dead_lettered_for_its_trigger() -> None:
    async def scenario(h: Harness) -> None:
        topic = h.kafka.create_topic("orders")
        h.subscribe("/guest/T", topic)
        await h.start()
        h.kafka.produce(topic, ["x" * 10_000, "small"])
        await until(lambda: len(h.dead()) == 1 and h.values("/guest/T") == ["small"], "dead letter and delivery")
        headers = dict(h.dead()[0].headers)
        assert (headers[topics.DL_TRIGGER], headers[topics.DL_REASON]) == (b"/guest/T", b"payload-too-large")
        await h.stop()
        assert h.kafka.committed_offset(topic) == 2
    run(scenario)


# --- lifecycle --------------------------------------------------------------------------------


def test_the_router_is_ready_only_once_the_subscriptions_table_is_loaded() -> None:
    async def scenario(h: Harness) -> None:
        topic = h.kafka.create_topic("orders")
        h.subscribe("/guest/T", topic)
        source = GatedSource(h.log.reader())
        await h.start(source, wait_ready=False)
        await until(lambda: source.reads >= 1, "the table being read")
        await asyncio.sleep(0)
        assert h.router is not None and not h.router.ready and h.reader.topics == frozenset()
        source.gate.set()
        await until(lambda: h.router is not None and h.router.ready, "ready")
        assert h.reader.topics == {topic}
        await h.stop()
        assert not h.router.ready
    run(scenario)


def test_stop_sends_the_open_batches_commits_and_closes() -> None:
    async def scenario(h: Harness) -> None:
        topic = h.kafka.create_topic("orders")
        h.subscribe("/guest/T", topic, batch_window_ms=LONG_WINDOW_MS)
        await h.start()
        h.kafka.produce(topic, texts("m", 3))
        await until(lambda: h.metric("router_records_consumed_total") == 3, "routed")
        assert h.envelopes() == []
        await h.stop()
        assert h.batches("/guest/T") == [texts("m", 3)]
        assert h.kafka.committed_offset(topic) == 3
        assert h.reader.closed
    run(scenario)


def test_a_deleted_subscription_stops_and_the_group_is_left_when_no_topic_remains() -> None:
    async def scenario(h: Harness) -> None:
        topic = h.kafka.create_topic("orders")
        h.subscribe("/guest/T", topic, max_batch_messages=1)
        await h.start()
        h.kafka.produce(topic, ["m0"])
        await until(lambda: h.values("/guest/T") == ["m0"], "delivered")
        h.log.append(records.subscription_key("/guest/T"), None)
        await until(lambda: h.reader.topics == frozenset(), "no topic left")
        assert h.kafka.committed_offset(topic) == 1 and not h.reader.assigned  # committed before leaving
        h.kafka.produce(topic, ["gone"])
        h.subscribe("/guest/U", topic, max_batch_messages=1)  # from "latest": after "gone"
        h.kafka.produce(topic, ["new"])
        await until(lambda: h.values("/guest/U") == ["new"], "the topic read again for a new subscription")
        await h.stop()
        assert h.values("/guest/T") == ["m0"]
    run(scenario)


def test_a_failed_task_stops_the_router_with_its_reason() -> None:
    async def scenario(h: Harness) -> None:
        topic = h.kafka.create_topic("orders")
        h.subscribe("/guest/T", topic, max_batch_messages=1)
        await h.start()
        h.producer.broken = ValueError("a bug")
        h.kafka.produce(topic, ["m0"])
        assert h.task is not None
        try:
            await asyncio.wait_for(h.task, 10)
        except RuntimeError as e:
            assert isinstance(e.__cause__, ValueError)
        else:
            raise AssertionError("the router went on after a failed task")
        assert h.kafka.committed_offset(topic) == 0  # the record is read again on restart
    run(scenario, shutdown_timeout_s=0.2)


# --- defence in depth (issue 11): the topic policy, and one subscription's failure stays its own ---


def test_a_subscription_no_grant_covers_is_never_read_and_disabled_once_and_a_grant_lets_it_in() -> None:
    async def scenario(h: Harness) -> None:
        mine, theirs = h.kafka.create_topic("alice.orders"), h.kafka.create_topic("bob-private")
        h.grant_guest = False
        h.grant("alice", "alice.orders")
        h.subscribe("/alice/OK", mine, max_batch_messages=1)
        version = h.subscribe("/alice/Steal", theirs, max_batch_messages=1)
        await h.start()
        assert h.reader.topics == {mine}
        await until(lambda: h.statuses("/alice/Steal"), "the refusal's status record")
        status = h.statuses("/alice/Steal")[0]
        assert (status.status_code, status.config, status.state) == (403, version, "disabled")
        assert status.message == grants.still_allowed(grants.TopicPolicy(frozenset({OUT, DEAD, SUBSCRIPTIONS})),
                                                      "/alice/Steal", theirs, [])
        assert "bob-private is not granted to the namespace alice" in status.message
        h.kafka.produce(theirs, ["secret"])
        h.kafka.produce(mine, ["m0"])
        await until(lambda: h.values("/alice/OK") == ["m0"], "the allowed subscription fires")
        h.feed_back()  # the status record comes back through the table: nothing is written again
        await h.polls(5)
        assert len(h.statuses("/alice/Steal")) == 1 and h.envelopes("/alice/Steal") == [] and h.dead() == []
        h.grant("alice", theirs)  # granted now: read from its start positions
        await until(lambda: h.reader.topics == {mine, theirs}, "subscribed once granted")
        await h.stop()
    run(scenario)


def test_a_revoked_grant_disables_the_subscriptions_it_covered_naming_their_version() -> None:
    async def scenario(h: Harness) -> None:
        topic = h.kafka.create_topic("shared")
        h.grant_guest = False
        h.grant("alice", "sha", prefix=True)
        version = h.subscribe("/alice/T", topic, max_batch_messages=1)
        await h.start()
        h.kafka.produce(topic, ["before"])
        await until(lambda: h.values("/alice/T") == ["before"], "fired while granted")
        h.grant("alice", "sha", prefix=True, revoke=True)
        await until(lambda: h.reader.topics == frozenset() and h.statuses("/alice/T"), "unsubscribed and disabled")
        status = h.statuses("/alice/T")[0]
        assert (status.status_code, status.config) == (403, version)
        assert status.message.startswith(grants.REVOKED)
        h.kafka.produce(topic, ["after"])  # nothing reads the topic any more
        await h.stop()
        assert h.values("/alice/T") == ["before"] and len(h.statuses("/alice/T")) == 1
    run(scenario)


def test_service_and_internal_topics_are_never_subscribed_whatever_the_grants() -> None:
    async def scenario(h: Harness) -> None:
        for name in (OUT, DEAD, SUBSCRIPTIONS, "__consumer_offsets", "__anything"):
            h.kafka.create_topic(name)
        ok = h.kafka.create_topic("orders")
        h.subscribe("/guest/OK", ok, max_batch_messages=1)
        refused = {f"/guest/R{i}": topic for i, topic in enumerate((OUT, DEAD, SUBSCRIPTIONS, "__consumer_offsets",
                                                                     "__anything", "not a topic!"))}
        for trigger, topic in refused.items():
            h.subscribe(trigger, topic, start={})
        await h.start()
        await until(lambda: all(h.statuses(t) for t in refused), "every refusal recorded")
        assert h.reader.topics == {ok}
        assert "Kafka's internal topics" in h.statuses("/guest/R3")[0].message
        assert "the messaging service's own topics" in h.statuses("/guest/R1")[0].message
        assert "is not a Kafka topic name" in h.statuses("/guest/R5")[0].message
        h.kafka.produce(DEAD, ["a dead letter"])
        h.kafka.produce(ok, ["m0"])
        await until(lambda: h.values("/guest/OK") == ["m0"], "the others fire")
        assert h.dead() == [] and all(len(h.statuses(t)) == 1 for t in refused)
        await h.stop()
    run(scenario)


def test_a_deleted_topic_disables_its_subscriptions_alone() -> None:
    async def scenario(h: Harness) -> None:
        doomed, ok = h.kafka.create_topic("doomed"), h.kafka.create_topic("orders")
        version = h.subscribe("/guest/D", doomed, max_batch_messages=1)
        h.subscribe("/guest/OK", ok, max_batch_messages=1)
        await h.start()
        del h.kafka.partitions[doomed]
        for _ in range(2):  # missing at two checks in a row
            h.clock.advance(router_module.TOPIC_CHECK_S)
            await h.polls(2)
        await until(lambda: h.reader.topics == {ok} and h.statuses("/guest/D"), "unsubscribed and disabled")
        status = h.statuses("/guest/D")[0]
        assert (status.status_code, status.config) == (404, version) and "doomed does not exist" in status.message
        h.kafka.produce(ok, ["m0"])
        await until(lambda: h.values("/guest/OK") == ["m0"], "the others fire")
        await h.stop()
    run(scenario)


def test_kafka_python_failing_inside_poll_over_a_missing_topic_refuses_that_topic_only() -> None:
    async def scenario(h: Harness) -> None:
        doomed, ok = h.kafka.create_topic("doomed"), h.kafka.create_topic("orders")
        h.subscribe("/guest/D", doomed)
        h.subscribe("/guest/OK", ok, max_batch_messages=1)
        await h.start()
        del h.kafka.partitions[doomed]
        h.reader.poll_error = KeyError(TopicPartition(doomed, 0))  # as the cooperative-sticky assignor raises
        await until(lambda: h.reader.topics == {ok} and h.statuses("/guest/D"), "that topic refused")
        h.kafka.produce(ok, ["m0"])
        await until(lambda: h.values("/guest/OK") == ["m0"], "the others fire")
        assert h.task is not None and not h.task.done()
        await h.stop()
    run(scenario)


def test_a_failure_inside_poll_that_no_topic_explains_stops_the_router() -> None:
    async def scenario(h: Harness) -> None:
        h.subscribe("/guest/T", h.kafka.create_topic("orders"))
        await h.start()
        h.reader.poll_error = KeyError("a bug")
        assert h.task is not None
        try:
            await asyncio.wait_for(h.task, 10)
        except KeyError:
            pass
        else:
            raise AssertionError("the router went on after an unexplained failure")
    run(scenario)


def test_a_subscription_whose_credential_cannot_be_re_sealed_dead_letters_and_is_disabled_alone() -> None:
    async def scenario(h: Harness) -> None:
        topic = h.kafka.create_topic("orders")
        foreign = Sealer([Fernet.generate_key().decode()]).seal_subscription(API_KEY, "/guest/Bad")
        version = h.subscribe("/guest/Bad", topic, credential=foreign)
        h.subscribe("/guest/OK", topic, max_batch_messages=1)
        await h.start()
        h.kafka.produce(topic, ["m0", "m1"])
        await until(lambda: len(h.dead()) == 2 and h.values("/guest/OK") == ["m0", "m1"], "dead letters, deliveries")
        assert {dict(d.headers)[topics.DL_REASON] for d in h.dead()} == {b"bad-credential"}
        assert {dict(d.headers)[topics.DL_TRIGGER] for d in h.dead()} == {b"/guest/Bad"}
        status = h.statuses("/guest/Bad")
        assert len(status) == 1 and (status[0].status_code, status[0].config) == (401, version)
        assert "credential cannot be used (bad-credential" in status[0].message
        assert h.envelopes("/guest/Bad") == []
        await h.stop()
    run(scenario)


def test_envelope_ids_are_distinct_version_4_uuids() -> None:
    ids = [router_module.envelope_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 4 and str(uuid.UUID(i)) == i for i in ids[:100])
