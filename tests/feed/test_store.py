"""The SubscriptionStore contract, run against MemoryStore and against KafkaStore on the real broker
(so the memory store the lifecycle tests use behaves like Kafka), and KafkaStore's error mapping."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaConnectionError, KafkaTimeoutError

from feed.errors import FeedError
from feed.options import EARLIEST, LATEST
from feed.store import KafkaStore, MemoryStore, SubscriptionStore
from tests.fixtures.kafka import KafkaHandle

pytestmark = pytest.mark.timeout(120)
# the subscribed topic's records: partition -> record timestamps (ms)
DATA = {0: [1000, 2000, 3000], 1: [1500]}


@pytest.fixture
def kafka_clients(kafka: KafkaHandle) -> Iterator[tuple[KafkaConsumer, KafkaProducer]]:
    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap, group_id=None, enable_auto_commit=False)
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all", linger_ms=0)
    yield consumer, producer
    consumer.close()
    producer.close()


def kafka_store(kafka: KafkaHandle, clients: tuple[KafkaConsumer, KafkaProducer], data: str) -> KafkaStore:
    consumer, producer = clients
    for partition, timestamps in DATA.items():
        for ts in timestamps:
            producer.send(data, value=b"x", partition=partition, timestamp_ms=ts)
    producer.flush()
    subscriptions = kafka.create_topic("subs", config={"cleanup.policy": "compact"})
    return KafkaStore(lambda: consumer, lambda: producer, subscriptions, [kafka.bootstrap], lambda: 30.0)


def memory_store(data: str) -> MemoryStore:
    store = MemoryStore(brokers=["kafka:9092"])
    store.add_topic(data, partitions=len(DATA))
    for partition, timestamps in DATA.items():
        for ts in timestamps:
            store.append(data, partition, ts)
    return store


@pytest.fixture(params=["memory", "kafka"])
def store_and_topic(request: pytest.FixtureRequest) -> tuple[SubscriptionStore, str]:
    if request.param == "memory":
        return memory_store("orders"), "orders"
    kafka: KafkaHandle = request.getfixturevalue("kafka")
    data = kafka.create_topic("orders", partitions=len(DATA))
    return kafka_store(kafka, request.getfixturevalue("kafka_clients"), data), data


def test_latest_finds_the_last_record_of_each_key_with_its_offset(store_and_topic) -> None:
    store, _ = store_and_topic
    assert store.latest([b"a"]) == {}
    for key, value in ((b"a", b"1"), (b"b", b"2"), (b"a", b"3"), (b"c", b"4"), (b"b", None)):
        store.write(key, value)
    assert store.latest([b"a", b"b", b"missing"]) == {b"a": (2, b"3"), b"b": (4, None)}


def test_positions_resolve_latest_earliest_and_times(store_and_topic) -> None:
    store, topic = store_and_topic
    assert store.positions(topic, LATEST) == {0: 3, 1: 1}
    assert store.positions(topic, EARLIEST) == {0: 0, 1: 0}
    assert store.positions(topic, 1500) == {0: 1, 1: 0}
    assert store.positions(topic, 2001) == {0: 2, 1: 1}
    assert store.positions(topic, 10_000) == {0: 3, 1: 1}, "past the end: the end"


def test_an_unknown_topic_is_refused_with_the_old_wording(store_and_topic) -> None:
    store, _ = store_and_topic
    with pytest.raises(FeedError) as caught:
        store.positions("no-such-topic-here", LATEST)
    assert (caught.value.status, str(caught.value)) == (400, "Topic does not exist. You must create the topic first: "
                                                             "no-such-topic-here")


def test_the_bootstrap_servers_are_the_clusters(store_and_topic) -> None:
    store, _ = store_and_topic
    assert len(store.bootstrap_servers) == 1


def test_reading_past_the_activations_deadline_is_a_503(kafka: KafkaHandle, kafka_clients) -> None:
    consumer, producer = kafka_clients
    subscriptions = kafka.create_topic("subs", config={"cleanup.policy": "compact"})
    producer.send(subscriptions, key=b"a", value=b"1").get(timeout=30)
    store = KafkaStore(lambda: consumer, lambda: producer, subscriptions, [kafka.bootstrap], lambda: -1.0)
    with pytest.raises(FeedError) as caught:
        store.latest([b"a"])
    assert (caught.value.status, str(caught.value)) == (503, "reading the subscriptions took too long")


class _Refusing:
    """A kafka-python client whose every call fails the way an unreachable cluster does."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __getattr__(self, name: str):
        def fail(*args: object, **kwargs: object) -> None:
            raise self.error
        return fail


@pytest.mark.parametrize(("call", "error", "expected"), [
    (lambda s: s.write(b"k", b"v"), KafkaTimeoutError(), "Kafka did not accept the subscription: KafkaTimeoutError"),
    (lambda s: s.latest([b"k"]), KafkaConnectionError(), "Kafka is unavailable: KafkaConnectionError"),
    (lambda s: s.positions("orders", LATEST), KafkaConnectionError(), "Kafka is unavailable: KafkaConnectionError"),
])
def test_kafka_errors_become_503s_naming_only_the_error_type(call, error: Exception, expected: str) -> None:
    store = KafkaStore(lambda: _Refusing(error), lambda: _Refusing(error), "subs", ["kafka:9092"], lambda: 1.0)
    with pytest.raises(FeedError) as caught:
        call(store)
    assert (caught.value.status, str(caught.value)) == (503, expected)
