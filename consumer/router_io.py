"""The router's Kafka edge: the subscriptions log and a group consumer whose topics change.

Like kafka_io, every kafka-python consumer call runs on one dedicated thread per consumer, and
library errors become ``KafkaUnavailable`` here.

- ``KafkaLog`` is the ``table.LogSource`` of the subscriptions topic: partition 0 assigned
  directly (no group), read from the beginning. It creates the topic when missing (compacted,
  one partition) and refuses one with several partitions, since record order is the contract.
- ``GroupReader`` reads the subscribed topics in the router's consumer group, with cooperative
  rebalancing (KIP-429), so a new topic adds partitions without revoking the others.
  ``set_topics`` re-subscribes without a restart; with no topic at all the consumer is closed and
  the group left, and a new one is made when topics come back. Commits carry metadata (the
  catch-up state of consumer/positions.py). kafka-python 3 runs rebalance listeners on its own IO
  thread, where nothing may block: they pause the new partitions and hand over, and the owner
  positions them (``positions_of``, then ``start``) from its loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

from consumer.kafka_io import KafkaUnavailable, Record, learn_partitions
from consumer.table import Change
from messaging_lib import topics
from messaging_lib.errors import ConfigError
from messaging_lib.kafka_config import KafkaSettings

log = logging.getLogger("consumer.router")

Offsets = dict[TopicPartition, tuple[int, str]]  # offset and metadata


class _Thread:
    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)


class KafkaLog:
    """The subscriptions topic as a ``LogSource``."""

    def __init__(self, settings: KafkaSettings, topic: str, variable: str = "SUBSCRIPTIONS_TOPIC") -> None:
        self._settings, self._topic, self._variable = settings, topic, variable
        self._thread = _Thread("kafka-subscriptions")
        self._consumer: KafkaConsumer | None = None
        self._tp = TopicPartition(topic, 0)

    async def open(self) -> int:
        try:
            return await self._thread.call(self._open)
        except KafkaError as e:
            raise KafkaUnavailable(f"cannot read {self._topic}: {e}") from e

    def _open(self) -> int:
        self._consumer = KafkaConsumer(**self._settings.client_kwargs(), group_id=None, enable_auto_commit=False,
                                       max_partition_fetch_bytes=4 * 1024 * 1024)
        self._ensure_topic(self._consumer)
        self._consumer.assign([self._tp])
        self._consumer.seek_to_beginning(self._tp)
        return self._consumer.end_offsets([self._tp])[self._tp]

    def _ensure_topic(self, consumer: KafkaConsumer) -> None:
        """Create the topic when missing (compacted, one partition, the broker's replication)."""
        consumer.topics()  # fresh metadata
        partitions = consumer.partitions_for_topic(self._topic)
        if partitions:
            if len(partitions) != 1:
                raise ConfigError(self._variable, f"topic {self._topic!r} must have exactly one partition")
            return
        admin = KafkaAdminClient(**self._settings.client_kwargs())
        try:
            admin.create_topics({self._topic: {"num_partitions": topics.SUBSCRIPTIONS_TOPIC_PARTITIONS,
                                                "configs": topics.SUBSCRIPTIONS_TOPIC_CONFIG}},
                                wait_for_metadata=True)
            log.info("created the subscriptions topic", extra={"fields": {"topic": self._topic}})
        except TopicAlreadyExistsError:
            pass
        finally:
            admin.close()
        consumer.topics()

    async def read(self, timeout_s: float) -> list[Change]:
        def poll() -> list[Change]:
            assert self._consumer is not None
            batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=5000)
            return [Change(m.offset, m.key, m.value) for msgs in batches.values() for m in msgs]
        try:
            return await self._thread.call(poll)
        except KafkaError as e:
            raise KafkaUnavailable(f"reading {self._topic} failed: {e}") from e

    async def close(self) -> None:
        def close() -> None:
            if self._consumer is not None:
                self._consumer.close(autocommit=False)
        await self._thread.call(close)
        self._thread.shutdown()


class _Listener(ConsumerRebalanceListener):
    """Runs on kafka-python's IO thread, where nothing may block or call the network: new
    partitions are paused (a local change) until their owner has positioned them; the owner is
    told of every change through its callbacks, which must only hand over."""

    def __init__(self, reader: GroupReader) -> None:
        self._reader = reader

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self._reader.on_revoked(list(revoked))

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        consumer = self._reader._consumer
        if consumer is not None and assigned:
            consumer.pause(*assigned)
        self._reader.on_assigned(list(assigned))


class GroupReader:
    """The subscribed topics, in one consumer group with cooperative rebalancing (adding a topic
    revokes nothing). ``on_assigned``/``on_revoked`` are called on kafka-python's IO thread and
    must only hand over; assigned partitions stay paused until ``start`` positions them."""

    def __init__(self, settings: KafkaSettings, group_id: str,
                 on_assigned: Callable[[list[TopicPartition]], None],
                 on_revoked: Callable[[list[TopicPartition]], None], **config: Any) -> None:
        self.on_assigned, self.on_revoked = on_assigned, on_revoked
        self._config = dict(settings.client_kwargs(), group_id=group_id, enable_auto_commit=False,
                            auto_offset_reset="earliest", session_timeout_ms=10_000, heartbeat_interval_ms=3_000,
                            partition_assignment_strategy=[CooperativeStickyAssignor], **config)
        self._thread = _Thread(f"kafka-{group_id}")
        self._consumer: KafkaConsumer | None = None
        self.topics: frozenset[str] = frozenset()

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await self._thread.call(fn, *args)
        except KafkaError as e:
            raise KafkaUnavailable(str(e)) from e

    async def set_topics(self, topics: Collection[str]) -> None:
        """Subscribe to exactly ``topics``; none closes the consumer (the caller commits first)."""
        wanted = frozenset(topics)

        def apply() -> None:
            if not wanted:
                if self._consumer is not None:
                    self._consumer.close(autocommit=False)
                    self._consumer = None
                return
            if self._consumer is None:
                self._consumer = KafkaConsumer(**self._config)
            learn_partitions(self._consumer, wanted - self.topics)
            self._consumer.subscribe(sorted(wanted), listener=_Listener(self))
        if wanted != self.topics:
            await self._call(apply)
            self.topics = wanted

    async def refresh_metadata(self) -> None:
        """Fetch the cluster's metadata now: a leader that assigned without some topic's
        partitions sees them change, and rejoins at the next poll."""
        def refresh() -> None:
            if self._consumer is not None:
                self._consumer.topics()
        await self._call(refresh)

    async def poll(self, timeout_s: float, max_records: int) -> list[Record]:
        def poll() -> list[Record]:
            if self._consumer is None:
                return []
            batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
            return [Record(m.topic, m.partition, m.offset, m.key, m.value, list(m.headers or []), m.timestamp)
                    for msgs in batches.values() for m in msgs]
        if self._consumer is None:
            await asyncio.sleep(timeout_s)
            return []
        return await self._call(poll)

    async def positions_of(self, partitions: list[TopicPartition]
                           ) -> tuple[dict[TopicPartition, tuple[int, str] | None], dict[TopicPartition, int]]:
        """Committed offset and metadata (None if never committed), and end offset, per partition."""
        def fetch() -> tuple[dict[TopicPartition, tuple[int, str] | None], dict[TopicPartition, int]]:
            assert self._consumer is not None
            committed: dict[TopicPartition, tuple[int, str] | None] = {}
            for tp in partitions:
                found = self._consumer.committed(tp, metadata=True)
                committed[tp] = None if found is None or found.offset < 0 else (found.offset, found.metadata or "")
            return committed, dict(self._consumer.end_offsets(partitions))
        return await self._call(fetch)

    async def start(self, positions: dict[TopicPartition, int]) -> None:
        """Seek newly assigned partitions and let them be fetched."""
        def apply() -> None:
            assert self._consumer is not None
            owned = self._consumer.assignment()
            mine = {tp: o for tp, o in positions.items() if tp in owned}
            for tp, offset in mine.items():
                self._consumer.seek(tp, offset)
            if mine:
                self._consumer.resume(*mine)
        if positions and self._consumer is not None:
            await self._call(apply)

    async def seek(self, positions: dict[TopicPartition, int]) -> None:
        def apply() -> None:
            assert self._consumer is not None
            owned = self._consumer.assignment()
            for tp, offset in positions.items():
                if tp in owned:
                    self._consumer.seek(tp, offset)
        if positions and self._consumer is not None:
            await self._call(apply)

    async def pause(self, partitions: Collection[TopicPartition], pause: bool) -> None:
        def apply() -> None:
            if self._consumer is None:
                return
            owned = [tp for tp in partitions if tp in self._consumer.assignment()]
            if owned and pause:
                self._consumer.pause(*owned)
            elif owned:
                self._consumer.resume(*owned)
        if partitions:
            await self._call(apply)

    async def commit(self, offsets: Offsets) -> None:
        def commit() -> None:
            assert self._consumer is not None
            self._consumer.commit({tp: OffsetAndMetadata(o, meta, -1) for tp, (o, meta) in offsets.items()})
        if offsets and self._consumer is not None:
            try:
                await self._thread.call(commit)
            except KafkaError as e:
                raise KafkaUnavailable(f"commit failed: {e}") from e

    async def close(self) -> None:
        await self.set_topics(())
        self._thread.shutdown()
