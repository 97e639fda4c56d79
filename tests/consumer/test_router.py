"""The router against the real Kafka broker, with its subscriptions table in memory (MemoryLog).

Each test has its own topics and consumer group. Envelopes are read back from the test's own
trigger-messages topic and opened as the firer would (binary mode), so these tests check what the
router writes: which records reach which trigger, once, in order, and where each resumes.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

import pytest
from cryptography.fernet import Fernet
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry

from consumer.kafka_rd import Producer
from consumer.metrics import RouterMetrics
from consumer.router import Router
from consumer.settings import Settings
from consumer.table import MemoryLog
from feed import grants, records
from feed.records import Options, Segment, Status, Subscription
from messaging_lib import envelope, topics
from messaging_lib.credentials import Sealer
from messaging_lib.kafka_config import KafkaSettings
from tests.fixtures.kafka import KafkaHandle
from tests.fixtures.router_log import current_subscription, write_subscription

pytestmark = pytest.mark.timeout(120)
API_KEY = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:" + "a" * 64
SEALING_KEY = Fernet.generate_key().decode()
SEALER = Sealer([SEALING_KEY])


@dataclass
class Harness:
    kafka: KafkaHandle
    log: MemoryLog = field(default_factory=MemoryLog)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    router: Router | None = None
    task: asyncio.Task | None = None

    def __post_init__(self) -> None:
        self.out = self.kafka.create_topic("envelopes", partitions=2)
        self.dead = self.kafka.create_topic("dead")

    def settings(self) -> Settings:
        return Settings(roles="router", sealing_keys=SEALING_KEY,
                        kafka=KafkaSettings(bootstrap_servers=(self.kafka.bootstrap,)),
                        trigger_messages_topic=self.out, dead_letter_topic=self.dead,
                        router_group=f"router-{self.run_id}", commit_interval_s=0.1, shutdown_timeout_s=5,
                        max_payload_bytes=900_000)

    async def start(self) -> Router:
        """The first start grants the test user every topic, as the operator does (after the records
        the test wrote, so their offsets stay; the table's load decides them once the grant is read)."""
        guest = grants.Grant("guest", "", prefix=True)
        if not any(c.key == guest.key for c in self.log.records):
            self.log.append(guest.key, grants.encode_grant(guest, 1))
        settings = self.settings()
        self.producer = Producer(settings.kafka)
        self.router = Router(settings, self.producer, self.log.reader(), RouterMetrics(CollectorRegistry()),
                             sealer=SEALER)
        self.task = asyncio.ensure_future(self.router.run())
        await until(lambda: self.router.ready, "the router is ready")  # type: ignore[union-attr]
        return self.router

    async def stop(self) -> None:
        assert self.router is not None and self.task is not None
        self.router.stop()
        await asyncio.wait_for(self.task, 30)
        self.producer.close()

    def subscribe(self, trigger: str, topic: str, start_from: str = "latest", **options: object) -> int:
        start = self.offsets(topic, earliest=start_from == "earliest")
        sub = Subscription(trigger=trigger, topic=topic, credential=SEALER.seal_subscription(API_KEY, trigger),
                           options=Options(**options),
                           start_from=start_from, segments=(Segment(None, start),), created_ms=1, updated_ms=1)
        return write_subscription(self.log, sub)

    def current(self, trigger: str) -> Subscription:
        return current_subscription(self.log, trigger)

    def rewrite(self, sub: Subscription) -> int:
        return write_subscription(self.log, sub)

    def offsets(self, topic: str, earliest: bool = False) -> dict[int, int]:
        consumer = KafkaConsumer(bootstrap_servers=self.kafka.bootstrap)
        try:
            tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
            found = consumer.beginning_offsets(tps) if earliest else consumer.end_offsets(tps)
            return {tp.partition: o for tp, o in found.items()}
        finally:
            consumer.close()

    def produce(self, topic: str, values: list[bytes], **kwargs: object) -> None:
        producer = KafkaProducer(bootstrap_servers=self.kafka.bootstrap, max_request_size=2 * 1024 * 1024)
        for value in values:
            producer.send(topic, value=value, **kwargs)
        producer.flush()
        producer.close()

    def read(self, topic: str) -> list:
        """Every record of a topic up to its current end (no quiet-time guess)."""
        consumer = KafkaConsumer(bootstrap_servers=self.kafka.bootstrap, enable_auto_commit=False)
        try:
            tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            ends = consumer.end_offsets(tps)
            found: list = []
            while any(consumer.position(tp) < ends[tp] for tp in tps):
                for batch in consumer.poll(timeout_ms=500).values():
                    found += batch
            return sorted(found, key=lambda r: (r.partition, r.offset))
        finally:
            consumer.close()

    def envelopes(self) -> list[tuple[str, str, list[dict]]]:
        """(trigger, source, messages) of every envelope written, parsed as the firer does."""
        out = []
        for record in self.read(self.out):
            env = envelope.parse_record(list(record.headers), record.value)
            out.append((env.trigger, env.source, env.data["messages"]))
        return out

    def values(self, trigger: str) -> list[str]:
        return [m["value"] for t, _, messages in self.envelopes() if t == trigger for m in messages]


async def until(check: Callable[[], object], what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def values_reach(h: Harness, trigger: str, expected: list[str], timeout_s: float = 30) -> None:
    def done() -> bool:
        return len(h.values(trigger)) >= len(expected)
    await asyncio.to_thread(lambda: None)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not await asyncio.to_thread(done):
        await asyncio.sleep(0.1)
    assert await asyncio.to_thread(h.values, trigger) == expected


def run(kafka: KafkaHandle, scenario: Callable[[Harness], Awaitable[None]]) -> None:
    asyncio.run(scenario(Harness(kafka)))


def texts(prefix: str, n: int, start: int = 0) -> list[str]:
    return [f"{prefix}{i}" for i in range(start, start + n)]


def test_messages_of_a_subscribed_topic_arrive_batched_with_every_field(kafka: KafkaHandle) -> None:
    async def scenario(h: Harness) -> None:
        topic = kafka.create_topic("orders")
        h.subscribe("/guest/T", topic)
        await h.start()
        await asyncio.to_thread(h.produce, topic, [v.encode() for v in texts("m", 5)], key=b"k",
                                headers=[("h", b"v")])
        await values_reach(h, "/guest/T", texts("m", 5))
        _, source, messages = (await asyncio.to_thread(h.envelopes))[0]
        assert records.config_version_of(source) == 0
        assert messages[0] == {"topic": topic, "partition": 0, "offset": 0, "key": "k", "value": "m0",
                               "timestamp": messages[0]["timestamp"], "headers": [["h", "v"]]}
        assert len(await asyncio.to_thread(h.envelopes)) < 5  # batched
        await h.stop()
        consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap, group_id=h.settings().router_group)
        assert consumer.committed(TopicPartition(topic, 0)) == 5  # committed after the envelopes' acks
        consumer.close()
    run(kafka, scenario)


def test_earliest_on_a_topic_already_read_catches_up_for_that_subscription_only(kafka: KafkaHandle) -> None:
    async def scenario(h: Harness) -> None:
        topic = kafka.create_topic("orders")
        await asyncio.to_thread(h.produce, topic, [v.encode() for v in texts("old", 3)])
        h.subscribe("/guest/A", topic)
        await h.start()
        await asyncio.to_thread(h.produce, topic, [v.encode() for v in texts("new", 3)])
        await values_reach(h, "/guest/A", texts("new", 3))
        h.subscribe("/guest/B", topic, start_from="earliest")
        await values_reach(h, "/guest/B", texts("old", 3) + texts("new", 3))
        await asyncio.to_thread(h.produce, topic, [b"later"])
        await values_reach(h, "/guest/B", [*texts("old", 3), *texts("new", 3), "later"])
        await values_reach(h, "/guest/A", [*texts("new", 3), "later"])  # nothing twice
        await h.stop()
    run(kafka, scenario)


def test_a_catch_up_decided_while_the_router_was_down_happens_at_its_restart(kafka: KafkaHandle) -> None:
    async def scenario(h: Harness) -> None:
        topic = kafka.create_topic("orders")
        h.subscribe("/guest/A", topic)
        await h.start()
        await asyncio.to_thread(h.produce, topic, [v.encode() for v in texts("a", 4)])
        await values_reach(h, "/guest/A", texts("a", 4))
        await h.stop()
        h.subscribe("/guest/B", topic, start_from="earliest")
        await asyncio.to_thread(h.produce, topic, [b"b"])
        await h.start()
        await values_reach(h, "/guest/B", [*texts("a", 4), "b"])
        await values_reach(h, "/guest/A", [*texts("a", 4), "b"])
        await h.stop()
    run(kafka, scenario)


def test_pause_holds_one_subscription_and_unpause_resumes_exactly_where_it_stopped(kafka: KafkaHandle) -> None:
    async def scenario(h: Harness) -> None:
        topic = kafka.create_topic("orders", partitions=2)
        h.subscribe("/guest/P", topic)
        h.subscribe("/guest/Q", topic)
        await h.start()
        await asyncio.to_thread(h.produce, topic, [b"1"], partition=0)
        await values_reach(h, "/guest/P", ["1"])
        h.rewrite(h.current("/guest/P").paused_at(h.offsets(topic), now_ms=2))
        await asyncio.sleep(0.5)
        await asyncio.to_thread(h.produce, topic, [b"2", b"3"], partition=1)
        await values_reach(h, "/guest/Q", ["1", "2", "3"])  # the others go on
        assert await asyncio.to_thread(h.values, "/guest/P") == ["1"]
        h.rewrite(h.current("/guest/P").unpaused(now_ms=3))
        await values_reach(h, "/guest/P", ["1", "2", "3"])
        await asyncio.to_thread(h.produce, topic, [b"4"], partition=0)
        await values_reach(h, "/guest/P", ["1", "2", "3", "4"])
        await values_reach(h, "/guest/Q", ["1", "2", "3", "4"])
        await h.stop()
    run(kafka, scenario)


def test_disabled_and_oversized_messages_go_to_the_dead_letter_topic_with_their_trigger(kafka: KafkaHandle) -> None:
    async def scenario(h: Harness) -> None:
        topic = kafka.create_topic("orders")
        version = h.subscribe("/guest/D", topic)
        h.subscribe("/guest/OK", topic, max_batch_bytes=1000)
        h.log.append(records.status_key("/guest/D"),
                     records.encode_status(Status(404, records.disabled_message(404), version, 1)))
        await h.start()
        await asyncio.to_thread(h.produce, topic, [b"small", b"x" * 950_000])
        await values_reach(h, "/guest/OK", ["small"])

        def dead() -> list:
            return h.read(h.dead)
        await until(lambda: len(dead()) >= 3, "three dead letters")
        found = sorted((dict(r.headers)[topics.DL_TRIGGER].decode(), dict(r.headers)[topics.DL_REASON].decode(),
                        len(r.value)) for r in dead())
        assert found == [("/guest/D", "subscription-disabled", 5), ("/guest/D", "subscription-disabled", 950_000),
                         ("/guest/OK", "payload-too-large", 950_000)]
        h.rewrite(replace(h.current("/guest/D"), updated_ms=9))  # an UPDATE re-enables
        await asyncio.to_thread(h.produce, topic, [b"again"])
        await values_reach(h, "/guest/D", ["again"])
        await h.stop()
    run(kafka, scenario)


def test_options_change_what_follows_and_a_deleted_subscription_stops(kafka: KafkaHandle) -> None:
    async def scenario(h: Harness) -> None:
        topic = kafka.create_topic("orders")
        h.subscribe("/guest/T", topic)
        await h.start()
        await asyncio.to_thread(h.produce, topic, [b'{"n": 1}'])
        await values_reach(h, "/guest/T", ['{"n": 1}'])
        h.rewrite(replace(h.current("/guest/T"), options=Options(is_json_data=True)))
        await asyncio.sleep(0.3)
        await asyncio.to_thread(h.produce, topic, [b'{"n": 2}'])
        await values_reach(h, "/guest/T", ['{"n": 1}', {"n": 2}])  # type: ignore[list-item]
        h.log.append(records.subscription_key("/guest/T"), None)
        await until(lambda: not h.router.index.topics(), "no topic left")  # type: ignore[union-attr]
        await asyncio.to_thread(h.produce, topic, [b"gone"])
        await asyncio.sleep(1)
        assert len(await asyncio.to_thread(h.values, "/guest/T")) == 2
        await h.stop()
    run(kafka, scenario)


def test_the_payload_the_firer_receives_is_under_the_limit_for_big_messages(kafka: KafkaHandle) -> None:
    async def scenario(h: Harness) -> None:
        topic = kafka.create_topic("orders")
        h.subscribe("/guest/T", topic)
        await h.start()
        await asyncio.to_thread(h.produce, topic, [b"a" * 600_000, b"b" * 600_000])
        await values_reach(h, "/guest/T", ["a" * 600_000, "b" * 600_000])
        sizes = [len(json.dumps({"messages": m}, separators=(",", ":"))) for _, _, m in h.envelopes()]
        assert len(sizes) == 2 and all(s <= 900_000 for s in sizes)
        await h.stop()
    run(kafka, scenario)
