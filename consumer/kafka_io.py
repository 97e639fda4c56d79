"""The Kafka edge: kafka-python clients made usable from one asyncio loop.

kafka-python (3.x: 2.0.2 drops fetched records of a partition paused mid-batch, and
advances its position past them, which this service's backpressure would turn into loss) is
not thread-safe, so every consumer call runs on one dedicated thread
(`ConsumerThread`); the loop awaits it. Rebalance callbacks fire during poll, on kafka-python's
IO thread, and are handed to the owner as plain functions. The producer is thread-safe; `send`
turns its delivery future into an awaitable so a dead-letter write is known to be acknowledged
before the offset behind it is committed. Library errors stay here: callers see `KafkaUnavailable`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from messaging_lib.kafka_config import KafkaSettings

RebalanceCallback = Callable[[list[TopicPartition]], None]


class KafkaUnavailable(RuntimeError):
    """Kafka did not accept a request (after the client's own retries)."""


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp_ms: int

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


class _Listener(ConsumerRebalanceListener):
    def __init__(self, on_assigned: Callable[[list[TopicPartition]], None],
                 on_revoked: Callable[[list[TopicPartition]], None]) -> None:
        self._assigned, self._revoked = on_assigned, on_revoked

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._assigned(list(assigned))

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self._revoked(list(revoked))


def learn_partitions(consumer: KafkaConsumer, topics: Collection[str], wait_s: float = 5.0) -> list[str]:
    """Call before subscribing; returns the topics still without partitions. The group leader
    assigns only the partitions its metadata knows, and kafka-python 3 does not rejoin by itself
    when a just-created topic shows up later (until metadata_max_age_ms, 5 minutes), so a consumer
    started right after its topic was made would sit idle."""
    deadline = time.monotonic() + wait_s
    for topic in topics:
        while not consumer.partitions_for_topic(topic) and time.monotonic() < deadline:
            time.sleep(0.1)
    return [topic for topic in topics if not consumer.partitions_for_topic(topic)]


class ConsumerThread:
    """A group consumer whose every call runs on its own thread. The rebalance callbacks run on
    kafka-python's IO thread and must not block or call the consumer."""

    def __init__(self, settings: KafkaSettings, group_id: str, topics: Sequence[str],
                 on_assigned: Callable[[list[TopicPartition]], None],
                 on_revoked: Callable[[list[TopicPartition]], None], **config: Any) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"kafka-{group_id}")
        self._topics = list(topics)
        self._listener = _Listener(on_assigned, on_revoked)
        self._consumer: KafkaConsumer | None = None
        self._config = dict(settings.client_kwargs(), group_id=group_id, enable_auto_commit=False,
                            auto_offset_reset="earliest", **config)

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def start(self) -> list[str]:
        """Create the consumer and subscribe; returns the topics whose partitions are not known yet."""
        def create() -> list[str]:
            self._consumer = KafkaConsumer(**self._config)
            missing = learn_partitions(self._consumer, self._topics)
            self._consumer.subscribe(self._topics, listener=self._listener)
            return missing
        try:
            return await self._call(create)
        except KafkaError as e:
            raise KafkaUnavailable(f"cannot create the consumer: {e}") from e

    async def poll(self, timeout_ms: int, max_records: int) -> list[Record]:
        def poll() -> list[Record]:
            assert self._consumer is not None
            batches = self._consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
            return [Record(m.topic, m.partition, m.offset, m.key, m.value, list(m.headers or []), m.timestamp)
                    for msgs in batches.values() for m in msgs]
        return await self._call(poll)

    async def pause(self, pause: bool) -> None:
        def apply() -> None:
            assert self._consumer is not None
            assigned = list(self._consumer.assignment())
            if pause:
                self._consumer.pause(*assigned)
            else:
                self._consumer.resume(*assigned)
        await self._call(apply)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        def commit() -> None:
            assert self._consumer is not None
            self._consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()})
        if offsets:
            try:
                await self._call(commit)
            except KafkaError as e:
                raise KafkaUnavailable(f"commit failed: {e}") from e

    async def close(self) -> None:
        def close() -> None:
            if self._consumer is not None:
                self._consumer.close(autocommit=False)
        await self._call(close)
        self._executor.shutdown(wait=True)


class Producer:
    """A shared, thread-safe kafka-python producer whose sends can be awaited."""

    def __init__(self, settings: KafkaSettings, **config: Any) -> None:
        self._producer = KafkaProducer(**settings.client_kwargs(), acks="all", linger_ms=2,
                                       max_request_size=4 * 1024 * 1024, **config)

    async def send(self, topic: str, value: bytes | None, key: bytes | None = None,
                   headers: list[tuple[str, bytes]] | None = None) -> tuple[int, int]:
        """Send and wait for the broker's acknowledgement; returns (partition, offset)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[tuple[int, int]] = loop.create_future()

        def ok(md: Any) -> None:
            loop.call_soon_threadsafe(_settle, done, (md.partition, md.offset), None)

        def failed(exc: BaseException) -> None:
            loop.call_soon_threadsafe(_settle, done, None, KafkaUnavailable(f"send to {topic} failed: {exc}"))

        try:
            future = self._producer.send(topic, value=value, key=key, headers=headers or [])
        except KafkaError as e:
            raise KafkaUnavailable(f"send to {topic} failed: {e}") from e
        future.add_callback(ok)
        future.add_errback(failed)
        return await done

    def close(self, timeout_s: float = 10.0) -> None:
        self._producer.flush(timeout=timeout_s)
        self._producer.close(timeout=timeout_s)


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)
