"""What the two Kafka edges share: the one error above them, the record shapes, and the one
thread each client's calls run on.

The firer's consumers are on kafka-python (consumer/kafka_edge.py) and the router's reader, the
subscriptions log and the producer on librdkafka (consumer/kafka_rd.py); the code above them
(firer, router, parking, dead letters) knows only the names here. Neither library is safe to call
from several threads at once, so every call on one client runs on that client's ``ClientThread``
and the loop awaits it; each edge gives the thread its own error mapping (its library's errors
become ``KafkaUnavailable``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from kafka import TopicPartition

RebalanceCallback = Callable[[list[TopicPartition]], None]
# A revoke callback that may hold the rebalance: the future it returns completes once the revoked
# partitions' final commit landed or was given up (consumer/kafka_edge.py ``_Listener``).
ReleaseCallback = Callable[[list[TopicPartition]], "concurrent.futures.Future[None] | None"]
Offsets = dict[TopicPartition, tuple[int, str]]  # offset and metadata


class KafkaUnavailable(RuntimeError):
    """Kafka did not accept a request (after the client's own retries)."""


@dataclass(frozen=True)
class Record:
    """One record of a group consumer's poll. ``tp`` is built once (a field outside the
    constructor and comparisons): the firer reads it several times per message, and ``polled``
    (the consumer's poll) shares one per partition."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp_ms: int
    tp: TopicPartition = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tp", TopicPartition(self.topic, self.partition))

    @classmethod
    def polled(cls, tp: TopicPartition, raw: Any) -> Record:
        """The record of a kafka-python ``ConsumerRecord`` of partition ``tp``: the value
        ``Record(...)`` builds, without the frozen dataclass's checked assignment per field
        (a poll hands over hundreds)."""
        built = object.__new__(cls)
        built.__dict__.update(topic=tp.topic, partition=tp.partition, offset=raw.offset, key=raw.key, value=raw.value,
                              headers=list(raw.headers or []), timestamp_ms=raw.timestamp, tp=tp)
        return built


@dataclass(frozen=True, slots=True)
class PartitionRecords:
    """One partition's records from one poll of the router's reader (consumer/kafka_rd.py), one
    light object per record (the router reads thousands per poll). Each record has ``offset``,
    ``key``, ``value``, ``headers`` (name, bytes pairs, or None) and ``timestamp`` (epoch ms),
    ascending by offset."""

    topic: str
    partition: int
    records: Sequence[Any]

    @staticmethod
    def record(topic: str, partition: int, raw: Any) -> Record:
        """One of ``records`` as a ``Record`` (for the rare record that needs one: a dead letter)."""
        return Record(topic, partition, raw.offset, raw.key, raw.value, list(raw.headers or []), raw.timestamp)


class ClientThread:
    """The one thread every call on one client runs on; ``mapped(what)`` turns the library's
    errors raised there into ``KafkaUnavailable``."""

    def __init__(self, name: str, mapped: Callable[[str], AbstractContextManager[None]]) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._mapped = mapped

    async def call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        with self._mapped(what):
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)


def settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    """Complete ``future`` from a library callback (via ``call_soon_threadsafe``) unless it is done."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)
